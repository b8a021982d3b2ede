/**
 * Shared state for everything that must agree across gateway instances: rate-limit counters,
 * idempotency keys, introspection and replay caches. Values are strings (callers JSON-encode).
 * Every operation is bounded in time: a dead Redis yields a StoreUnavailable error, never a hang.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  get(key: string): Promise<string | undefined>;
  /** Returns false when `onlyIfAbsent` and the key exists. */
  set(key: string, value: string, opts?: { ttlMs?: number; onlyIfAbsent?: boolean }): Promise<boolean>;
  del(key: string): Promise<void>;
  /** Atomic increment with the window's TTL set on first use; returns the count and the ms left. */
  incr(key: string, ttlMs: number): Promise<{ count: number; ttlMs: number }>;
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
