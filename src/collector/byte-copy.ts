/**
 * Copies between Buffers without Buffer's own methods, for the paths that run
 * once per line (rendering, bulk lines, `_id` keys).
 *
 * In optimized code, reading a method or `buffer`/`byteOffset` off a Buffer
 * is a call to V8's generic load IC: Node's Buffer prototype is not one
 * TurboFan folds (Node 20). Measured on the 2-core VM (2026-11-30): 7 to
 * 11 ns a read; `Buffer#copy` of a range, which reads several and makes a
 * view of its source, about 100 ns a call, against 47 ns for `putRange`.
 * Callers that copy out of one Buffer many times keep its ArrayBuffer and
 * offset once.
 */
const typedArraySet = Uint8Array.prototype.set;

/** `src` whole into `dst` at `at`; returns where it ends there. */
export function put(src: Uint8Array, dst: Uint8Array, at: number): number {
  typedArraySet.call(dst, src, at);
  return at + src.length;
}

/** Bytes [from, to) of `memory` into `dst` at `at`; returns where they end there. */
export function putRange(memory: ArrayBufferLike, from: number, to: number, dst: Uint8Array, at: number): number {
  typedArraySet.call(dst, new Uint8Array(memory, from, to - from), at);
  return at + to - from;
}
