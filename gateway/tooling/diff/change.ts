/** What a change does to the governed surface: more access, more data or fewer limits is widening. */
export type Effect = 'widening' | 'narrowing';

export interface FacetChange {
  effect: Effect;
  text: string;
}

/**
 * Every key of either side, in first-seen order, with its own value on each (undefined where absent):
 * a key named like an inherited property (`constructor`, `__proto__`) is data, never the prototype's.
 */
export function bothSides<T>(prev: Readonly<Record<string, T>>, next: Readonly<Record<string, T>>): Array<[key: string, prev: T | undefined, next: T | undefined]> {
  const own = (o: Readonly<Record<string, T>>, k: string) => (Object.hasOwn(o, k) ? o[k] : undefined);
  return [...new Set([...Object.keys(prev), ...Object.keys(next)])].map((k) => [k, own(prev, k), own(next, k)]);
}
