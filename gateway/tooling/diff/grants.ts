/**
 * Granted values, compared by coverage rather than by equality: a grant of `*` (anything) covers every
 * value, so narrowing "any purpose" to "TREAT" is not reported as TREAT being newly granted. Tuples
 * (fields.ts) are tab-separated, and `*` covers one position.
 */
export const TUPLE_SEP = '\t';
export const ANY = '*';

function covers(wide: string, narrow: string): boolean {
  if (wide === narrow) return true;
  const w = wide.split(TUPLE_SEP);
  const n = narrow.split(TUPLE_SEP);
  return w.length === n.length && w.every((c, i) => c === ANY || c === n[i]);
}

/** Values of `next` that nothing in `prev` already granted, and values of `prev` that `next` no longer grants. */
export function grantDelta(prev: readonly string[], next: readonly string[]): { gained: string[]; lost: string[] } {
  // Exact matches first: field tuples run to thousands per route, and most are unchanged.
  const [p, n] = [new Set(prev), new Set(next)];
  const wild = (vs: readonly string[]) => vs.filter((v) => v.split(TUPLE_SEP).includes(ANY));
  const [pw, nw] = [wild(prev), wild(next)];
  return {
    gained: next.filter((v) => !p.has(v) && !pw.some((w) => covers(w, v))),
    lost: prev.filter((v) => !n.has(v) && !nw.some((w) => covers(w, v))),
  };
}
