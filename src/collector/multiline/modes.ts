/**
 * Which trace rules apply to a line's source: the `multiline` config for
 * every container, overridden per container by its `clogs.multiline` label
 * (`off`, `auto`, a rule name, or `regex:<start regex>`).
 */
import type { MultilineSettings } from '../../config/schema.js';
import type { ContainerMeta } from '../event.js';
import { linearRegExp, linearRegexError } from './linear-regex.js';
import { BUILT_IN, NO, RULE_NAMES, type TraceRule } from './rules.js';

const LABEL = 'clogs.multiline';
const MAX_LABEL_VALUES = 1024;

/** The rules of a source; `anyLine`: a rule can open on any line, so no byte check can rule a line out. */
export interface Mode {
  rules: readonly TraceRule[];
  anyLine: boolean;
}

const OFF: Mode = { rules: [], anyLine: false };
const AUTO: Mode = { rules: RULE_NAMES.map((n) => BUILT_IN[n]), anyLine: false };

/** A custom rule from a start and/or a continuation pattern. */
function regexRule(start: RegExp | undefined, cont: RegExp | undefined): TraceRule {
  return {
    name: 'regex',
    opens: (line) => (start === undefined || start.test(line) ? 0 : NO),
    // Without a continuation pattern, every line up to the next start belongs.
    next: (_state, line) => (cont !== undefined ? (cont.test(line) ? 0 : NO) : start!.test(line) ? NO : 0),
  };
}

function modeOf(name: Exclude<MultilineSettings['mode'], 'regex'>): Mode {
  if (name === 'off') return OFF;
  if (name === 'auto') return AUTO;
  return { rules: [BUILT_IN[name]], anyLine: false };
}

export function configMode(cfg: MultilineSettings): Mode {
  if (cfg.mode !== 'regex') return modeOf(cfg.mode);
  const start = cfg.start === undefined ? undefined : linearRegExp(cfg.start);
  const cont = cfg.continue === undefined ? undefined : linearRegExp(cfg.continue);
  return { rules: [regexRule(start, cont)], anyLine: true };
}

/** A label's mode, or the reason it is not one. */
export function labelMode(value: string): Mode | string {
  const v = value.trim();
  if (v.startsWith('regex:')) {
    const source = v.slice('regex:'.length);
    const err = source === '' ? 'an empty pattern' : linearRegexError(source);
    return err === undefined ? { rules: [regexRule(linearRegExp(source), undefined)], anyLine: true } : `regex: ${err}`;
  }
  if (v === 'off' || v === 'auto' || (RULE_NAMES as readonly string[]).includes(v)) return modeOf(v as Exclude<MultilineSettings['mode'], 'regex'>);
  return `expected off, auto, ${RULE_NAMES.join(', ')} or regex:<pattern>`;
}

/** Modes by container, parsed once per label value; a bad label is reported once and the config's mode applies. */
export class ModeTable {
  private readonly byLabel = new Map<string, Mode>();

  constructor(
    private readonly fallback: Mode,
    private readonly onBadLabel: (container: ContainerMeta, value: string, reason: string) => void,
  ) {}

  of(container: ContainerMeta | undefined): Mode {
    const value = container?.labels?.[LABEL];
    if (value === undefined) return this.fallback;
    let mode = this.byLabel.get(value);
    if (mode === undefined) {
      const parsed = labelMode(value);
      if (typeof parsed === 'string') {
        this.onBadLabel(container!, value, parsed);
        mode = this.fallback;
      } else mode = parsed;
      // Label values are few on a host; a flood of distinct ones only costs re-parsing.
      if (this.byLabel.size >= MAX_LABEL_VALUES) this.byLabel.clear();
      this.byLabel.set(value, mode);
    }
    return mode;
  }
}
