// The clogs web page: containers, their lines (history, then live), search.
// Log lines are untrusted: they reach the page only through textContent,
// never as markup, and the server's Content-Security-Policy runs no other script.

const PAGE = 200;
/** Lines kept in the page; older ones are dropped and read again when scrolled back to. */
const MAX_LINES = 5000;
const CONTAINERS_EVERY_MS = 5000;
/** After an answer to /tail that is no stream: the server's Retry-After for too many streams. */
const LIVE_RETRY_MS = 10_000;

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

/** What is shown; mirrored in the address so a view can be shared. */
const view = { containers: [], q: '', stream: '', level: '', since: '', until: '' };
const FILTERS = ['q', 'stream', 'level', 'since', 'until'];

function readAddress() {
  const p = new URLSearchParams(location.search);
  view.containers = p.getAll('container').filter(Boolean);
  for (const k of FILTERS) view[k] = p.get(k) ?? '';
}

function viewParams(extra = {}) {
  const p = new URLSearchParams();
  for (const c of view.containers) p.append('container', c);
  for (const k of FILTERS) if (view[k]) p.set(k, view[k]);
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p;
}

function writeAddress() {
  const q = viewParams().toString();
  const next = q ? `?${q}` : location.pathname;
  if (location.search !== (q ? `?${q}` : '')) history.pushState(null, '', next);
}

// ---- lines -----------------------------------------------------------------

/** The names the collector stores in `log.level` (LEVEL_NAMES in src/collector/levels.ts); only these become a class. */
const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** `@timestamp/host/seq`, the order and identity of a line (src/tail/order.ts eventKey); undefined for an event without them (the server sends none). */
const keyOf = (e) =>
  typeof e?.['@timestamp'] === 'string' && typeof e.host?.name === 'string' && Number.isSafeInteger(e.clogs?.seq) ? `${e['@timestamp']}/${e.host.name}/${e.clogs.seq}` : undefined;

/** Keys in the collected order: the time (fixed width, so text order is time order), the host, then the sequence number. */
function compareKeys(a, b) {
  const [ta, ha, sa] = keyParts(a);
  const [tb, hb, sb] = keyParts(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (ha !== hb) return byCodePoint(ha, hb);
  return sa - sb;
}

/** Host names in code point order, as Elasticsearch sorts keywords (src/tail/order.ts). */
function byCodePoint(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  const ca = a.codePointAt(i);
  const cb = b.codePointAt(i);
  return ca === undefined || cb === undefined ? a.length - b.length : ca - cb;
}

/** A key's time, host and sequence number: the time has no "/", the sequence number is the last part, the host what lies between. */
function keyParts(key) {
  const first = key.indexOf('/');
  const last = key.lastIndexOf('/');
  return [key.slice(0, first), key.slice(first + 1, last), Number(key.slice(last + 1))];
}

const sourceName = (e) => e.container?.name ?? e.clogs.tag ?? e.container?.id?.slice(0, 12) ?? e.clogs.input;

/**
 * JSON.parse, with integers past 2^53 kept as written (a zerolog nanosecond
 * time, a snowflake id): the collector stores them exactly, and JSON.parse
 * alone would show them rounded. The reviver's source text is in Chromium
 * 114, Firefox 135 and Safari 18.4; elsewhere they read as before.
 */
const exactJson =
  typeof JSON.rawJSON === 'function'
    ? (text) =>
        JSON.parse(text, (_key, value, context) =>
          typeof value === 'number' && !Number.isSafeInteger(value) && typeof context?.source === 'string' && /^-?\d+$/.test(context.source) ? JSON.rawJSON(context.source) : value,
        )
    : (text) => JSON.parse(text);

/** The fields of an event, flattened to `a.b.c` paths, for the opened line. */
function flatten(value, prefix, out) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !JSON.isRawJSON?.(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.push([prefix, typeof value === 'string' ? value : JSON.stringify(value)]);
  return out;
}

/** A message that is itself a JSON object (a line stored without parsing) opens as its fields too. */
function messageObject(message) {
  if (!message.startsWith('{')) return undefined;
  try {
    const v = exactJson(message);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function renderLine(e, showSource) {
  const key = keyOf(e);
  if (key === undefined) throw new Error('no @timestamp, host.name and clogs.seq');
  const li = el('li', 'line');
  const level = e.log?.level;
  // Any other word (one an older collector stored, say) has no style, and may hold characters no class name can.
  if (LEVELS.has(level)) li.classList.add(`lvl-${level}`);
  if (e.stream === 'stderr') li.classList.add('stderr');
  const json = e.attrs !== undefined || messageObject(e.message) !== undefined;
  if (json) li.classList.add('json');
  const t = el('time', '', e['@timestamp'].slice(11, 23));
  t.title = e['@timestamp'];
  li.append(t, el('span', 'src', showSource ? sourceName(e) : ''), el('span', 'lvl', level ? level.toUpperCase() : ''));
  const msg = el('span', 'msg');
  highlight(msg, e.message);
  li.append(msg);
  li.dataset.key = key;
  li.addEventListener('click', (ev) => {
    if (ev.target.closest('.fields')) return;
    const open = li.querySelector('.fields');
    if (open) return open.remove();
    const table = el('table', 'fields');
    // What the line says first, then where it came from.
    const { '@timestamp': ts, message, log, attrs, stream, container, ...rest } = e;
    const rows = flatten({ '@timestamp': ts, message, log, attrs, stream, container, ...rest }, '', []).filter(([, v]) => v !== undefined);
    const inner = messageObject(e.message);
    if (inner) rows.push(...flatten(inner, 'message', []));
    for (const [k, v] of rows) {
      const tr = el('tr');
      tr.append(el('td', '', k), el('td', '', v));
      table.append(tr);
    }
    li.append(table);
  });
  return li;
}

/**
 * How the store found the lines of a search (`search` of /api/lines): the
 * file store finds the query as written ("substring"), so it is marked
 * whole; Elasticsearch finds its words apart and in any order
 * ("query_string"), so each word and "quoted phrase" is marked, not
 * operators (AND, OR, NOT), what they exclude (-word, NOT word) nor words
 * of other fields (stream:stderr).
 */
let searchMatch = 'substring';
let termsOf = { q: '', match: '', terms: [] };
function searchTerms() {
  if (termsOf.q === view.q && termsOf.match === searchMatch) return termsOf.terms;
  const terms = [];
  if (searchMatch !== 'query_string') {
    if (view.q !== '') terms.push(view.q.toLowerCase());
  } else {
    let excluded = false;
    for (const [, phrase, word] of view.q.matchAll(/"([^"]*)"?|(\S+)/g)) {
      if (word === 'AND' || word === 'OR') continue;
      if (word === 'NOT') {
        excluded = true;
        continue;
      }
      // A word of another field (stream:stderr) matched that field, not the message.
      const field = word === undefined ? undefined : /^[+(]*([\w.@]+):(.*)$/.exec(word);
      const term = (phrase ?? (field ? field[2] : word).replace(/^[+(]+|\)+$/g, '')).toLowerCase();
      if (term !== '' && !excluded && !word?.startsWith('-') && (!field || field[1] === 'message')) terms.push(term);
      excluded = false;
    }
  }
  termsOf = { q: view.q, match: searchMatch, terms };
  return terms;
}

/** The message as text, the search's terms marked (text nodes only, never markup). */
function highlight(node, text) {
  const terms = searchTerms();
  if (terms.length === 0) return void (node.textContent = text);
  const lower = text.toLowerCase();
  let at = 0;
  for (;;) {
    // The first term from `at`; of two at one place, the longer.
    let i = -1;
    let length = 0;
    for (const t of terms) {
      const j = lower.indexOf(t, at);
      if (j !== -1 && (i === -1 || j < i || (j === i && t.length > length))) [i, length] = [j, t.length];
    }
    if (i === -1) break;
    node.append(document.createTextNode(text.slice(at, i)), el('mark', '', text.slice(i, i + length)));
    at = i + length;
  }
  node.append(document.createTextNode(text.slice(at)));
}

// ---- one view: history pages, then the live stream ---------------------------

let current; // the running view; replaced on every change

class View {
  constructor() {
    this.abort = new AbortController();
    this.keys = new Set();
    this.cursor = undefined; // where the next older page starts; undefined: nothing older
    this.loadingOlder = false;
    this.detached = false; // scrolled back so far that the newest lines were dropped
    this.missed = 0; // detached: the lines not shown since
    this.missedUncounted = false; // detached: more lines than counted were not shown
    this.newest = undefined; // the newest key shown or counted as missed: where a catch-up stops
    this.held = undefined; // live lines waiting for the history before them; undefined: shown as they come
    this.reading = Promise.resolve(); // the history reads that hold live lines, one after another
    this.showSource = view.containers.length !== 1 || view.q !== '';
    this.list = $('lines');
    this.list.replaceChildren();
    this.list.classList.toggle('one-source', !this.showSource);
    $('latest').hidden = true;
    $('older').textContent = '';
  }

  get isLive() {
    return view.q === '' && view.until === '' && !paused;
  }

  async start() {
    const searching = view.q !== '';
    status(searching ? 'Searching…' : 'Loading…', 'busy');
    // Subscribed before the history is read: a line stored in between comes on
    // both sides and is shown once (by key).
    if (this.isLive) await this.openLive();
    const loaded = await this.holdLive(async () => {
      try {
        const page = await this.fetchPage();
        if (this.abort.signal.aborted) return false;
        this.prepend(page.events);
        this.cursor = page.next ?? undefined;
        return true;
      } catch (err) {
        if (this.abort.signal.aborted) return false;
        status(`${searching ? 'Search failed' : 'Loading failed'}: ${err.message}`, 'error');
        // Without its history the view takes no live line either (held ones would pile up).
        this.source?.close();
        this.source = undefined;
        this.held = undefined;
        return false;
      }
    });
    if (!loaded) return;
    this.scrollToEnd();
    if (this.list.children.length === 0) this.list.append(el('li', 'empty', searching ? 'No line matches.' : 'No lines yet.'));
    this.idleStatus();
    this.watchOlder();
  }

  /**
   * Runs a history read (which must not throw) while live lines wait, so
   * that they come after what it shows. Reads queue behind each other; the
   * held lines are shown once the last one is done.
   */
  async holdLive(read) {
    this.held ??= [];
    const done = this.reading.then(read);
    this.reading = done;
    const result = await done;
    if (this.reading === done && this.held && !this.abort.signal.aborted) {
      const held = this.held;
      this.held = undefined;
      this.append(held);
    }
    return result;
  }

  idleStatus() {
    const n = this.keys.size;
    const what = view.q ? `${n} match${n === 1 ? '' : 'es'}${this.cursor ? ' so far (scroll up for more)' : ''}` : `${n} line${n === 1 ? '' : 's'}`;
    if (this.source && this.source.readyState === EventSource.OPEN) status(`${what} · live`, 'live');
    else if (this.source) status(`${what} · live stream reconnecting…`, 'busy');
    else status(what + (paused && !view.q ? ' · paused' : ''));
  }

  /** `again`: after a stream that ended, so what was stored meanwhile is read once this one opens. */
  openLive(again = false) {
    const params = viewParams();
    params.delete('since');
    params.delete('until');
    const source = new EventSource(`/tail?${params}`);
    this.source = source;
    this.abort.signal.addEventListener('abort', () => source.close());
    let reconnecting = again;
    source.onmessage = (m) => {
      let e;
      try {
        e = exactJson(m.data);
      } catch {
        return; // Not an event: nothing to show.
      }
      if (this.held) this.held.push(e);
      else this.append([e]);
    };
    return new Promise((resolve) => {
      source.onopen = () => {
        resolve();
        // Subscribed again: what was stored while the stream was down is in the store.
        if (reconnecting) void this.holdLive(() => this.catchUp());
        reconnecting = false;
        if (this.list.children.length > 0) this.idleStatus();
      };
      source.onerror = () => {
        resolve();
        reconnecting = true;
        if (this.list.children.length > 0) this.idleStatus();
        // An answer that is no stream (a 503 past the server's most streams,
        // a 401) ends an EventSource for good: a new one, a little later.
        if (source.readyState === EventSource.CLOSED) {
          const timer = setTimeout(() => {
            if (this.source === source && !this.abort.signal.aborted) void this.openLive(true);
          }, LIVE_RETRY_MS);
          this.abort.signal.addEventListener('abort', () => clearTimeout(timer));
        }
      };
    });
  }

  /**
   * After the live stream was down: the lines stored meanwhile, read back
   * page by page to the newest line the view has had, and added in order.
   * More than the view holds, or a read that fails: a marker where they are
   * missing instead.
   */
  async catchUp() {
    // The view gave up (its history could not be read): nothing to catch up with.
    if (!this.source) return;
    const pages = [];
    let complete = false;
    try {
      let before;
      for (let n = 0; n <= MAX_LINES; ) {
        const page = await this.fetchPage(before);
        const missing = page.events.filter((e) => this.isMissing(keyOf(e)));
        pages.unshift(missing);
        n += missing.length;
        before = page.next;
        if (page.events.some((e) => !this.isNewer(keyOf(e))) || !before) {
          complete = true;
          break;
        }
      }
    } catch {
      // Shown as missing lines below.
    }
    if (this.abort.signal.aborted) return;
    const missed = pages.flat();
    if (this.detached) {
      // Their copies that came live meanwhile are the same lines: counted once.
      const counted = new Set(missed.map(keyOf));
      this.held = this.held.filter((e) => !counted.has(keyOf(e)));
      this.countMissed(missed, !complete);
    } else if (complete) this.append(missed);
    else {
      this.showGap();
      // The marker stands for these: the next catch-up stops at them.
      for (const e of missed) this.noteNewest(keyOf(e));
    }
  }

  isNewer(key) {
    return key === undefined || this.newest === undefined || compareKeys(key, this.newest) > 0;
  }

  /**
   * Whether a line read back belongs to what the view missed: newer than its
   * newest, or, while it shows its newest lines, one of the lines it holds the
   * span of and does not show (a slower source's line, stored late with an
   * earlier time: live, it would have come after the newest).
   */
  isMissing(key) {
    if (this.isNewer(key)) return true;
    return !this.detached && !this.keys.has(key) && (this.cursor === undefined || compareKeys(key, this.cursor) >= 0);
  }

  /** A marker where lines are missing from the view, at its end; it reloads the view, which reads them. */
  showGap() {
    const follow = atEnd();
    this.list.querySelector('.empty')?.remove();
    const gap = el('li', 'gap');
    const reload = el('button', '', 'Lines are missing here (the live stream was down): reload');
    reload.type = 'button';
    reload.addEventListener('click', () => show());
    gap.append(reload);
    this.list.append(gap);
    if (follow) this.scrollToEnd();
  }

  noteNewest(key) {
    if (key !== undefined && (this.newest === undefined || compareKeys(key, this.newest) > 0)) this.newest = key;
  }

  async fetchPage(before) {
    const res = await fetch(`/api/lines?${viewParams({ limit: String(PAGE), ...(before ? { before } : {}) })}`, { signal: this.abort.signal });
    const body = await res
      .text()
      .then(exactJson)
      .catch(() => ({ error: `HTTP ${res.status}` }));
    if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
    searchMatch = body.search;
    return body;
  }

  /** The lines not shown yet, rendered. */
  render(events) {
    const frag = document.createDocumentFragment();
    for (const e of events) {
      const key = keyOf(e);
      if (key !== undefined) {
        if (this.keys.has(key)) continue;
        this.keys.add(key);
        this.noteNewest(key);
      }
      try {
        frag.append(renderLine(e, this.showSource));
      } catch (err) {
        // One event the page cannot draw is shown as it came, and never fails the lines around it.
        const li = el('li', 'unreadable', JSON.stringify(e));
        li.title = `Not readable as a line: ${err.message}`;
        if (key !== undefined) li.dataset.key = key;
        frag.append(li);
      }
    }
    return frag;
  }

  append(events) {
    if (events.length === 0) return;
    if (this.detached) return this.countMissed(events);
    const follow = atEnd();
    this.list.querySelector('.empty')?.remove();
    this.list.append(this.render(events));
    // Bounded: the oldest lines go; scrolling back reads them again from the store
    // (so does a gap marker left at the top: its lines are among those read).
    let dropped = false;
    let first;
    while ((first = this.list.firstElementChild) && (this.list.children.length > MAX_LINES || (dropped && !first.dataset.key))) {
      this.keys.delete(first.dataset.key);
      first.remove();
      dropped = true;
    }
    if (dropped) this.cursor = this.list.firstElementChild?.dataset.key;
    if (follow) this.scrollToEnd();
    if (this.list.children.length > 0) this.idleStatus();
  }

  /** Detached: lines not shown, counted on the button that jumps to the latest; `uncounted`: there may be more. */
  countMissed(events, uncounted = false) {
    this.missed += events.length;
    this.missedUncounted ||= uncounted;
    for (const e of events) this.noteNewest(keyOf(e));
    if (this.missed === 0 && !this.missedUncounted) return;
    const what = !this.missedUncounted ? `${this.missed} new line${this.missed === 1 ? '' : 's'}` : this.missed > 0 ? `${this.missed}+ new lines` : 'Lines may be missing';
    $('latest').hidden = false;
    $('latest').textContent = `${what}: jump to the latest`;
  }

  prepend(events) {
    const scroller = $('scroller');
    const before = scroller.scrollHeight;
    this.list.prepend(this.render(events));
    while (this.list.children.length > MAX_LINES) {
      const last = this.list.lastElementChild;
      this.keys.delete(last.dataset.key);
      last.remove();
      this.detached = true;
    }
    scroller.scrollTop += scroller.scrollHeight - before;
  }

  watchOlder() {
    const older = $('older');
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void this.loadOlder();
    }, { root: $('scroller'), rootMargin: '400px 0px 0px 0px' });
    observer.observe(older);
    this.abort.signal.addEventListener('abort', () => observer.disconnect());
    this.showOlderState();
  }

  showOlderState() {
    $('older').textContent = this.cursor ? 'Scroll up for older lines' : this.keys.size > 0 ? 'The beginning: nothing older matches.' : '';
  }

  async loadOlder() {
    if (!this.cursor || this.loadingOlder) return;
    this.loadingOlder = true;
    $('older').textContent = 'Loading older lines…';
    status(view.q ? 'Searching older lines…' : 'Loading older lines…', 'busy');
    try {
      const page = await this.fetchPage(this.cursor);
      if (this.abort.signal.aborted) return;
      this.cursor = page.next ?? undefined;
      this.prepend(page.events);
      this.idleStatus();
    } catch (err) {
      if (!this.abort.signal.aborted) status(`${view.q ? 'Search failed' : 'Loading failed'}: ${err.message}`, 'error');
    } finally {
      this.loadingOlder = false;
      this.showOlderState();
    }
    // Still at the top (short pages): keep going.
    if (this.cursor && $('scroller').scrollTop < 400 && !this.abort.signal.aborted) void this.loadOlder();
  }

  scrollToEnd() {
    const s = $('scroller');
    s.scrollTop = s.scrollHeight;
  }

  stop() {
    this.abort.abort();
  }
}

function atEnd() {
  const s = $('scroller');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
}

function status(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = kind;
}

let paused = false;

function show() {
  current?.stop();
  for (const k of FILTERS) if ($(k).value !== view[k]) $(k).value = view[k];
  const names = view.containers;
  const where = names.length === 0 ? 'all containers' : names.join(' + ');
  $('title').textContent = view.q ? `Search “${view.q}” in ${where}` : names.length === 0 ? 'All containers' : where;
  document.title = `${view.q ? `“${view.q}”` : names.length === 0 ? 'all' : names.join(' + ')} · clogs`;
  $('live').hidden = view.q !== '' || view.until !== '';
  $('live').textContent = paused ? 'Resume live' : 'Pause';
  $('dl-ndjson').href = `/api/export?${viewParams({ format: 'ndjson' })}`;
  $('dl-text').href = `/api/export?${viewParams({ format: 'text' })}`;
  markSelected();
  current = new View();
  void current.start();
}

function change(mutate) {
  mutate();
  writeAddress();
  show();
}

// ---- containers ------------------------------------------------------------

let containers = [];

function ago(ts) {
  if (!ts) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return ts.slice(0, 10);
}

/** How a container is asked for: its name, else its tag, else its id. */
const handle = (c) => c.name ?? c.tag ?? c.id;

function renderContainers() {
  const body = $('containers').tBodies[0];
  const rows = containers.map((c) => {
    const tr = el('tr');
    tr.dataset.handle = handle(c);
    const pick = el('input');
    pick.type = 'checkbox';
    pick.title = 'Show together with the others ticked';
    pick.checked = view.containers.includes(handle(c));
    pick.addEventListener('change', () =>
      change(() => {
        view.q = '';
        const set = new Set(view.containers);
        if (pick.checked) set.add(handle(c));
        else set.delete(handle(c));
        view.containers = [...set];
      }),
    );
    const name = el('button', 'name', c.name);
    name.type = 'button';
    name.addEventListener('click', () =>
      change(() => {
        view.q = '';
        view.containers = [handle(c)];
      }),
    );
    const cell = el('td');
    cell.append(name);
    const sub = el('div', 'sub', c.image ?? (c.tag ? `tag ${c.tag}` : ''));
    if (c.service) {
      const svc = el('button', '', `service ${c.service}`);
      svc.type = 'button';
      // Scoped to its project: another compose project may have a service of that name.
      const scoped = c.project ? `${c.project}/${c.service}` : c.service;
      svc.title = `Every replica of this compose service, merged (${scoped})`;
      svc.addEventListener('click', () =>
        change(() => {
          view.q = '';
          view.containers = [scoped];
        }),
      );
      sub.append(' · ', svc);
    }
    cell.append(sub);
    const check = el('td');
    check.append(pick);
    const state = el('td');
    state.append(el('span', `state ${c.state}`, c.state));
    const last = el('td', 'num', ago(c.last_seen));
    last.title = c.last_seen;
    const lines = el('td', 'num', `${c.stdout} / ${c.stderr}`);
    tr.append(check, cell, state, last, lines);
    return tr;
  });
  body.replaceChildren(...rows);
  markSelected();
}

function markSelected() {
  for (const tr of $('containers').tBodies[0].rows) tr.classList.toggle('selected', view.containers.includes(tr.dataset.handle));
}

async function loadContainers() {
  try {
    const res = await fetch('/api/containers');
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
    containers = body.containers;
    $('store').textContent = `${containers.length} source${containers.length === 1 ? '' : 's'} in the ${body.store}`;
    renderContainers();
  } catch (err) {
    $('store').textContent = `Cannot list containers: ${err.message}`;
  }
}

// ---- controls --------------------------------------------------------------

$('search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  change(() => (view.q = $('q').value.trim()));
});
$('q').addEventListener('search', () => {
  if ($('q').value === '' && view.q !== '') change(() => (view.q = ''));
});
for (const k of ['stream', 'level', 'since', 'until']) {
  $(k).addEventListener('change', () => change(() => (view[k] = $(k).value.trim())));
}
$('all').addEventListener('click', () => change(() => (view.containers = [])));
$('home').addEventListener('click', (ev) => {
  ev.preventDefault();
  change(() => {
    view.containers = [];
    for (const k of FILTERS) view[k] = '';
  });
});
$('live').addEventListener('click', () => {
  paused = !paused;
  show();
});
$('latest').addEventListener('click', () => show());
window.addEventListener('popstate', () => {
  readAddress();
  show();
});

readAddress();
show();
void loadContainers();
setInterval(() => {
  if (!document.hidden) void loadContainers();
}, CONTAINERS_EVERY_MS);
