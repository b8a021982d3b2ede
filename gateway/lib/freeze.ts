/**
 * Freezes a plain value and everything it holds, so an object shared beyond its creator (compiled
 * config, a verified token's claims cached across requests) cannot be changed by one of its readers.
 */
export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
