import { LRUCache } from 'lru-cache';
import type { Store } from './types.ts';

interface Entry {
  value: string;
  expiresAt: number;
}

/** Default bound: about 100 MB at the worst case of ~1 KB per idempotency record; counters are far smaller. */
export const DEFAULT_MAX_ENTRIES = 100_000;

export interface MemoryStoreOptions {
  now?: () => number;
  sweepMs?: number;
  /** Most keys held (values and sliding-window logs together); beyond it the least recently used are evicted. */
  maxEntries?: number;
  /** Called once per key evicted to make room (not for expiry): eviction weakens a limit, so it is counted. */
  onEvict?: () => void;
}

/** Admitted hit times (ascending) of one sliding window. */
interface HitLog {
  hits: number[];
  windowMs: number;
}

/**
 * Embedded single-process store. Expired entries are dropped lazily and by a periodic unref'd sweep; the
 * number of keys is bounded (a flood of distinct callers or idempotency keys cannot exhaust the heap), the
 * least recently used going first, each eviction reported through `onEvict`.
 */
export function createMemoryStore(opts: MemoryStoreOptions = {}): Store {
  const now = opts.now ?? Date.now;
  const max = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  // Expiry stays ours (entries carry expiresAt, checked against the injected clock); lru-cache only bounds.
  const bounded = <V extends {}>() =>
    new LRUCache<string, V>({ max, dispose: (_v, _k, reason) => reason === 'evict' && opts.onEvict?.() });
  const data = bounded<Entry>();
  const logs = bounded<HitLog>();
  const live = (key: string): Entry | undefined => {
    const e = data.get(key);
    if (e && e.expiresAt <= now()) {
      data.delete(key);
      return undefined;
    }
    return e;
  };
  const sweep = setInterval(() => {
    const t = now();
    for (const [k, e] of data.entries()) if (e.expiresAt <= t) data.delete(k);
    for (const [k, l] of logs.entries()) if (!l.hits.length || l.hits[l.hits.length - 1] + l.windowMs <= t) logs.delete(k);
  }, opts.sweepMs ?? 30_000);
  sweep.unref();

  return {
    kind: 'memory',
    async get(key) {
      return live(key)?.value;
    },
    async set(key, value, o = {}) {
      if (o.onlyIfAbsent && live(key)) return false;
      data.set(key, { value, expiresAt: o.ttlMs ? now() + o.ttlMs : Infinity });
      return true;
    },
    async del(key) {
      data.delete(key);
    },
    async incr(key, ttlMs) {
      const e = live(key);
      if (!e) {
        data.set(key, { value: '1', expiresAt: now() + ttlMs });
        return { count: 1, ttlMs };
      }
      e.value = String(Number(e.value) + 1);
      return { count: Number(e.value), ttlMs: e.expiresAt - now() };
    },
    async slidingHit(key, windowMs, limit) {
      const t = now();
      let log = logs.get(key);
      if (!log) logs.set(key, (log = { hits: [], windowMs }));
      log.windowMs = windowMs;
      const hits = log.hits;
      let expired = 0;
      while (expired < hits.length && hits[expired] <= t - windowMs) expired++;
      if (expired) hits.splice(0, expired);
      const admitted = hits.length < limit;
      if (admitted) hits.push(t);
      return { count: admitted ? hits.length : hits.length + 1, resetMs: hits.length ? hits[0] + windowMs - t : windowMs };
    },
    async ping() {
      return true;
    },
    async close() {
      clearInterval(sweep);
      data.clear();
      logs.clear();
    },
  };
}
