/// <reference lib="dom" />
/**
 * The web page in a real browser: Debian's chromium driven by puppeteer-core,
 * the built `clogs collect` following real containers through the Docker
 * engine into the file store.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, HTTPRequest, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogEvent } from '../../src/collector/event.js';
import { launchChromium } from '../helpers/browser.js';
import { docker, removeContainers, runContainer, uniquePrefix, waitExited } from '../helpers/docker.js';
import { ES_URL, requireDocker, requireElasticsearch, startCollector, tempDir, type RunningCollector } from '../helpers/services.js';
import { emitRecord, endSender, fluentSender } from '../helpers/tail.js';
import { until } from '../helpers/until.js';

/** The product asks for a new line within 1 s; the test allows for a busy machine. */
const LIVE_LINE_TIMEOUT_MS = 5000;
/** The container list refreshes every 5 s. */
const LIST_TIMEOUT_MS = 20_000;
const TOKEN = 'web-ui-test-token-0123456789';

const prefix = uniquePrefix('web');
const app = `${prefix}-app`;
const gone = `${prefix}-gone`;
const needle = `needle-${Math.random().toString(36).slice(2, 10)}`;
const dir = tempDir('web');
let collector: RunningCollector;
let browser: Browser;
let page: Page;
let base: string;

const SCRIPT_LINE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';

/** The collector of these tests, on `http` (a port, or 0 for any free one). */
const collect = (http: string): Promise<RunningCollector> =>
  startCollector(['--forward', '127.0.0.1:0', '--http', http, '--file', join(dir, 'data'), '--state', join(dir, 'state')], {
    CLOGS_DOCKER_INCLUDE_NAMES: `[${prefix}-*]`,
  });

beforeAll(async () => {
  await requireDocker();
  browser = await launchChromium();
  collector = await collect('127.0.0.1:0');
  base = `http://${collector.ready.http}`;
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
});

afterAll(async () => {
  await browser?.close();
  await collector?.stop();
  await removeContainers(prefix);
  rmSync(dir, { recursive: true, force: true });
});

const linesText = (): Promise<string> => page.$eval('#lines', (e) => e.textContent ?? '');
const waitForText = (text: string, timeout = 30_000) =>
  page.waitForFunction((t) => document.getElementById('lines')?.textContent?.includes(t), { timeout }, text);

/** The text of every search mark on the page, in order. */
const marks = (): Promise<string[]> => page.$$eval('#lines mark', (ms) => ms.map((m) => m.textContent ?? ''));

/** Lines of `/api/lines` (as the page reads them) once the store has them. */
async function storedMessages(query: string): Promise<string[]> {
  const res = await fetch(`${base}/api/lines?${query}`);
  const body = (await res.json()) as { events: LogEvent[] };
  return body.events.map((e) => e.message);
}

describe('the web page', () => {
  it('lists a container started during the test and shows a new line of it live', async () => {
    await page.goto(base + '/');
    await runContainer(
      app,
      `echo '{"level":"info","msg":"hello info"}'; echo '{"level":"warn","msg":"careful warn","user":{"id":42}}'; ` +
        `echo '{"level":"a b","msg":"spaced level"}'; echo '{"level":"INFO ","msg":"padded info"}'; echo '${SCRIPT_LINE}'; exec sleep 3600`,
    );
    await page.waitForFunction((name) => [...document.querySelectorAll('#containers .name')].some((b) => b.textContent === name), { timeout: LIST_TIMEOUT_MS }, app);
    const row = await page.$$eval('#containers tbody tr', (rows, name) => rows.find((r) => r.textContent?.includes(name))?.textContent, app);
    expect(row).toContain('running');

    await page.$$eval('#containers .name', (buttons, name) => (buttons.find((b) => b.textContent === name) as HTMLButtonElement | undefined)?.click(), app);
    await waitForText('careful warn');
    expect(new URL(page.url()).searchParams.get('container')).toBe(app);
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.includes('live'));

    await docker('exec', app, 'sh', '-c', 'echo fresh live line > /proc/1/fd/1');
    await waitForText('fresh live line', LIVE_LINE_TIMEOUT_MS);
  });

  it('shows a line whose level field holds a space, without a level; a padded level as its name', async () => {
    const classes = await page.$$eval('#lines .line', (lines) => Object.fromEntries(lines.map((l) => [l.querySelector('.msg')?.textContent, l.className])));
    expect(classes['spaced level']).toBeDefined();
    expect(classes['spaced level']).not.toMatch(/lvl-/);
    expect(classes['padded info']).toMatch(/\blvl-info\b/);
  });

  it('shows a line holding <script> as text and runs nothing', async () => {
    expect(await linesText()).toContain(SCRIPT_LINE);
    expect(await page.$$('#lines img, #lines script')).toHaveLength(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('opens a JSON line as its fields', async () => {
    await page.$$eval('#lines .line', (lines) => lines.find((l) => l.textContent?.includes('careful warn'))?.dispatchEvent(new MouseEvent('click', { bubbles: true })));
    const fields = await page.waitForSelector('#lines .fields');
    const rows = await fields!.$$eval('tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    expect(rows).toContainEqual(['attrs.user.id', '42']);
    expect(rows).toContainEqual(['log.level', 'warn']);
    expect(rows).toContainEqual(['message', 'careful warn']);
  });

  it('hides info lines under a level filter, and downloads only the filtered lines', async () => {
    expect(await linesText()).toContain('hello info');
    await page.select('#level', 'warn');
    await page.waitForFunction(() => {
      const text = document.getElementById('lines')?.textContent ?? '';
      return text.includes('careful warn') && !text.includes('hello info');
    });
    expect(new URL(page.url()).searchParams.get('level')).toBe('warn');

    const ndjson = await page.evaluate(async () => (await fetch((document.getElementById('dl-ndjson') as HTMLAnchorElement).href)).text());
    const events = ndjson.trim().split('\n').map((l) => JSON.parse(l) as LogEvent);
    expect(events.map((e) => e.message)).toEqual(['careful warn']);
    const text = await page.evaluate(async () => (await fetch((document.getElementById('dl-text') as HTMLAnchorElement).href)).text());
    expect(text).toMatch(new RegExp(`^\\S+Z ${app} \\| WARN  careful warn\\n$`));
  });

  it('finds a line of a container already removed, from the search box and from a link', async () => {
    await runContainer(gone, `echo 'before'; echo 'the ${needle} is here'; echo 'after'`);
    await waitExited(gone);
    let found: string[] = [];
    const deadline = Date.now() + 30_000;
    while (found.length === 0 && Date.now() < deadline) {
      found = await storedMessages(`q=${needle}`);
      if (found.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(found).toEqual([`the ${needle} is here`]);
    await docker('rm', gone);

    await page.goto(base + '/');
    await page.type('#q', needle);
    await page.keyboard.press('Enter');
    await waitForText(`the ${needle} is here`);
    expect(await linesText()).toContain(gone);
    expect(new URL(page.url()).searchParams.get('q')).toBe(needle);
    expect(await page.$eval('#status', (e) => e.textContent)).toContain('1 match');
    expect(await marks()).toEqual([needle]);
    // The file store finds a search as written: it is marked whole.
    await page.goto(`${base}/?q=${encodeURIComponent(`the ${needle} is`)}`);
    await waitForText(`the ${needle} is here`);
    expect(await marks()).toEqual([`the ${needle} is`]);

    await page.goto(`${base}/?q=${needle}`);
    await waitForText(`the ${needle} is here`);
    const state = await page.$$eval('#containers tbody tr', (rows, name) => rows.find((r) => r.textContent?.includes(name))?.textContent, gone);
    expect(state).toContain('removed');
  });

  it('shows every replica of a compose service, of its own project only, from the service button', async () => {
    // Two projects with a service of one name, as two compose files on one host.
    const compose = (project: string) => ['--label', `com.docker.compose.project=${prefix}-${project}`, '--label', 'com.docker.compose.service=web'];
    await runContainer(`${prefix}-shop-web-1`, `echo 'shop replica 1'; sleep 600`, { args: compose('shop') });
    await runContainer(`${prefix}-shop-web-2`, `echo 'shop replica 2'; sleep 600`, { args: compose('shop') });
    await runContainer(`${prefix}-blog-web-1`, `echo 'blog replica 1'; sleep 600`, { args: compose('blog') });
    await until('the three lines stored', async () => (await storedMessages('q=replica')).length === 3, 30_000);

    await page.goto(base + '/');
    const button = `#containers tbody tr[data-handle="${prefix}-blog-web-1"] button:not(.name)`;
    await page.waitForSelector(button, { timeout: LIST_TIMEOUT_MS });
    expect(await page.$eval(button, (b) => b.textContent)).toBe('service web');
    await page.click(button);
    await waitForText('blog replica 1');
    expect(new URL(page.url()).searchParams.getAll('container')).toEqual([`${prefix}-blog/web`]);
    const text = await linesText();
    expect(text).not.toContain('shop replica');
  });

  it('says why a search failed', async () => {
    await page.goto(`${base}/?q=anything&since=yesterday-ish`);
    await page.waitForFunction(() => document.getElementById('status')?.classList.contains('error'));
    expect(await page.$eval('#status', (e) => e.textContent)).toMatch(/^Search failed: since: expected a duration/);
  });

  it('shows the lines written while its live stream was down once and in order, before the live ones', async () => {
    await page.goto(`${base}/?container=${app}`);
    await waitForText('fresh live line');
    await page.waitForFunction(() => document.getElementById('status')?.classList.contains('live'));
    // The page's reconnection is held until the store has every line of the gap,
    // so that the page finds them there and not on its new live stream.
    const held: HTTPRequest[] = [];
    let holding = true;
    const route = (req: HTTPRequest): void => {
      if (holding && new URL(req.url()).pathname === '/tail') held.push(req);
      else void req.continue();
    };
    const release = async (): Promise<void> => {
      holding = false;
      await Promise.all(held.splice(0).map((req) => req.continue()));
    };
    await page.setRequestInterception(true);
    page.on('request', route);
    try {
      const http = collector.ready.http!;
      await collector.stop();
      await page.waitForFunction(() => document.getElementById('status')?.textContent?.includes('reconnecting'));
      // More lines than one page of history (200).
      const gap = Array.from({ length: 300 }, (_, i) => `gap line ${i + 1}`);
      await docker('exec', app, 'sh', '-c', 'i=1; while [ $i -le 300 ]; do echo "gap line $i"; i=$((i+1)); done > /proc/1/fd/1');
      collector = await collect(http);
      await until('the gap in the store', async () => (await storedMessages(`container=${app}&limit=1`))[0] === 'gap line 300');
      await release();
      await page.waitForFunction(() => document.getElementById('status')?.classList.contains('live'), { timeout: LIST_TIMEOUT_MS });
      await docker('exec', app, 'sh', '-c', 'echo after the gap > /proc/1/fd/1');
      await waitForText('after the gap', LIVE_LINE_TIMEOUT_MS);
      const messages = await page.$$eval('#lines .line .msg', (spans) => spans.map((s) => s.textContent));
      expect(messages.slice(messages.indexOf('fresh live line'))).toEqual(['fresh live line', ...gap, 'after the gap']);
    } finally {
      await release();
      page.off('request', route);
      await page.setRequestInterception(false);
    }
  });

  it('shows integers past 2^53 as written, in lines read from the store and in live ones', async () => {
    /** The field rows of the line holding `text`, opened. */
    const fieldsOf = async (text: string): Promise<Array<Array<string | null>>> => {
      await page.$$eval('#lines .line', (lines, t) => lines.find((l) => l.querySelector('.msg')?.textContent === t)?.dispatchEvent(new MouseEvent('click', { bubbles: true })), text);
      await page.waitForFunction((t) => [...document.querySelectorAll('#lines .line')].some((l) => l.querySelector('.msg')?.textContent === t && l.querySelector('.fields')), {}, text);
      return page.$$eval(
        '#lines .line',
        (lines, t) => [...(lines.find((l) => l.querySelector('.msg')?.textContent === t)?.querySelectorAll('.fields tr') ?? [])].map((tr) => [...tr.children].map((td) => td.textContent)),
        text,
      );
    };
    // Integers past 2^53, as zerolog writes a nanosecond time and services write snowflake ids.
    await docker('exec', app, 'sh', '-c', `echo '{"level":"info","msg":"big ints","time_ns":1700000000123456789,"id":-9007199254740993,"ratio":0.5}' > /proc/1/fd/1`);
    await until('the line in the store', async () => (await storedMessages(`container=${app}&limit=1`))[0] === 'big ints');
    await page.goto(`${base}/?container=${app}`);
    await waitForText('big ints');
    const stored = await fieldsOf('big ints');
    expect(stored).toContainEqual(['attrs.time_ns', '1700000000123456789']);
    expect(stored).toContainEqual(['attrs.id', '-9007199254740993']);
    expect(stored).toContainEqual(['attrs.ratio', '0.5']);
    await page.waitForFunction(() => document.getElementById('status')?.classList.contains('live'));
    await docker('exec', app, 'sh', '-c', `echo '{"msg":"big live","snowflake":1790000000000000001}' > /proc/1/fd/1`);
    await waitForText('big live', LIVE_LINE_TIMEOUT_MS);
    expect(await fieldsOf('big live')).toContainEqual(['attrs.snowflake', '1790000000000000001']);
  });
});

describe('the web page reading Elasticsearch', () => {
  let searched: RunningCollector | undefined;
  afterAll(async () => {
    await searched?.stop();
  });

  it('marks each word of a search, which Elasticsearch finds apart and in any order', async () => {
    await requireElasticsearch();
    searched = await startCollector(
      ['--no-docker', '--forward', '127.0.0.1:0', '--http', '127.0.0.1:0', '--es', ES_URL, '--file', join(dir, 'es-files'), '--state', join(dir, 'es-state')],
      { CLOGS_SINKS_ELASTICSEARCH_DATA_STREAM_DATASET: `webui${needle.replace(/[^a-z0-9]/g, '')}` },
    );
    const url = `http://${searched.ready.http}`;
    const s = fluentSender(searched.forwardPort());
    await emitRecord(s, 'words', { message: `${needle} timed out, NOT retrying: connection reset by peer` });
    await endSender(s);
    const query = `reset ${needle} -nothing AND "timed out" NOT retried message:peer tag:connection`;
    let answer: { events?: unknown[] } = {};
    const searchable = async (): Promise<boolean> => {
      answer = (await (await fetch(`${url}/api/lines?q=${encodeURIComponent(query)}`)).json()) as typeof answer;
      return answer.events?.length === 1;
    };
    await until('the line searchable', searchable, 30_000, () => answer);

    await page.goto(`${url}/?q=${encodeURIComponent(query)}`);
    await page.waitForFunction((t) => document.getElementById('lines')?.textContent?.includes(t), { timeout: 30_000 }, 'connection reset');
    expect(await marks()).toEqual([needle, 'timed out', 'reset', 'peer']);
  });
});

describe('the web page when /tail refuses it', () => {
  it('opens its live stream again after an answer that is no stream (a 503 past the most streams)', async () => {
    let refused = 0;
    const route = (req: HTTPRequest): void => {
      if (new URL(req.url()).pathname === '/tail' && refused === 0) {
        refused++;
        void req.respond({ status: 503, contentType: 'text/plain', headers: { 'retry-after': '10' }, body: 'too many /tail streams open (128); try again later\n' });
      } else void req.continue();
    };
    await page.setRequestInterception(true);
    page.on('request', route);
    try {
      await page.goto(`${base}/?container=${app}`);
      await waitForText('after the gap');
      // The page's EventSource is closed for good by the 503; the page opens another.
      await page.waitForFunction(() => document.getElementById('status')?.classList.contains('live'), { timeout: 30_000 });
      await docker('exec', app, 'sh', '-c', 'echo after a refused stream > /proc/1/fd/1');
      await waitForText('after a refused stream', LIVE_LINE_TIMEOUT_MS);
      expect(refused).toBe(1);
    } finally {
      page.off('request', route);
      await page.setRequestInterception(false);
    }
  });
});

describe('off loopback', () => {
  let guarded: RunningCollector | undefined;
  afterAll(async () => {
    await guarded?.stop();
  });

  it('refuses to start without http.auth', async () => {
    const err = await startCollector(['--no-docker', '--forward', '127.0.0.1:0', '--http', '0.0.0.0:0', '--file', join(dir, 'open'), '--state', join(dir, 'open-state')]).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/exited \(2\)/);
    expect(err?.message).toMatch(/http\.auth: required because http\.listen 0\.0\.0\.0:0 is not a loopback address/);
  });

  it('answers 401 on the page and /tail without the token, and serves them with it', async () => {
    guarded = await startCollector(
      ['--no-docker', '--forward', '127.0.0.1:0', '--http', '0.0.0.0:0', '--file', join(dir, 'guarded'), '--state', join(dir, 'guarded-state')],
      { CLOGS_HTTP_AUTH_TOKEN: TOKEN },
    );
    const port = guarded.ready.http!.split(':').pop();
    const url = `http://127.0.0.1:${port}`;
    for (const path of ['/', '/ui/app.js', '/api/lines', '/api/containers', '/tail', '/?token=not-the-token-at-all']) {
      const res = await fetch(url + path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate'), path).toBe('Basic realm="clogs", charset="UTF-8"');
    }
    expect((await fetch(`${url}/tail`, { headers: { authorization: 'Bearer wrong-token-of-some-length' } })).status).toBe(401);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const tail = await fetch(`${url}/tail`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(tail.status).toBe(200);
    await tail.body?.cancel();

    // The browser's own prompt: any user name, the token as the password.
    const prompted = await browser.newPage();
    try {
      await prompted.authenticate({ username: 'me', password: TOKEN });
      expect((await prompted.goto(`${url}/`))?.status()).toBe(200);
      await prompted.waitForFunction(() => document.getElementById('status')?.textContent?.includes('live'));
    } finally {
      await prompted.close();
    }

    // A link with the token sets a cookie and leaves the token out of the address.
    const linked = await (await browser.createBrowserContext()).newPage();
    try {
      expect((await linked.goto(`${url}/?token=${TOKEN}`))?.status()).toBe(200);
      expect(linked.url()).toBe(`${url}/`);
      await linked.waitForFunction(() => document.getElementById('status')?.textContent?.includes('live'));
    } finally {
      await linked.browserContext().close();
    }
  });
});
