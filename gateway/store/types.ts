/**
 * Shared state for everything that must agree across gateway instances: rate-limit counters,
 * idempotency keys, introspection and replay caches. Values are strings (callers JSON-encode).
 * Every operation is bounded in time: a dead or hung Redis yields a StoreUnavailable error, never a hang.
 * Keys are relative: the store adds its configured prefix.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | undefined>;
  /** Returns false when `onlyIfAbsent` and the key exists. */
  set(key: string, value: string, opts?: { ttlMs?: number; onlyIfAbsent?: boolean }): Promise<boolean>;
  del(key: string): Promise<void>;
  /** Atomic increment with the window's TTL set on first use (a fixed window); returns the count and the ms left. */
  incr(key: string, ttlMs: number): Promise<{ count: number; ttlMs: number }>;
  /**
   * One atomic step of a sliding-window log: records a hit unless `limit` hits already lie within the last
   * `windowMs`. Returns the hits in the window counting this one — so `count > limit` means it was refused
   * and not recorded (a caller retrying while refused does not push its own admission further away) — and
   * the ms until the oldest recorded hit leaves the window, i.e. when one more hit would be admitted.
   */
  slidingHit(key: string, windowMs: number, limit: number): Promise<{ count: number; resetMs: number }>;
  /** True when the store answers now. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export class StoreUnavailable extends Error {
  readonly code = 'ERR_STORE_UNAVAILABLE';
  constructor(message = 'shared store unavailable', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailable';
  }
}
