/**
 * Which directory of the store a source's lines go to: its sanitized
 * sourceName (layout.ts), from its container, or else its loose name (tag or
 * input). Cached per container object and per name, since every batch asks.
 */
import type { ContainerMeta } from '../../collector/event.js';
import { sourceName } from '../../collector/source.js';
import { sanitizeName } from './layout.js';

// Forward tags come from clients: the name cache must not grow with them.
const MAX_CACHED_NAMES = 4096;

export class SourceDirs {
  private readonly containerDirs = new WeakMap<ContainerMeta, string>();
  private readonly otherDirs = new Map<string, string>();
  private lastContainer: ContainerMeta | undefined;
  private lastContainerDir = '';

  dirOf(c: ContainerMeta | undefined, name: string): string {
    if (c !== undefined && c === this.lastContainer) return this.lastContainerDir;
    if (c !== undefined && (c.name || c.id)) {
      let dir = this.containerDirs.get(c);
      if (dir === undefined) {
        dir = sanitizeName(sourceName(c, undefined, name));
        this.containerDirs.set(c, dir);
      }
      this.lastContainer = c;
      this.lastContainerDir = dir;
      return dir;
    }
    let dir = this.otherDirs.get(name);
    if (dir === undefined) {
      if (this.otherDirs.size >= MAX_CACHED_NAMES) this.otherDirs.clear();
      dir = sanitizeName(name);
      this.otherDirs.set(name, dir);
    }
    return dir;
  }
}
