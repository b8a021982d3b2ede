import type { IncrementResponse, Store as LimiterStore } from 'express-rate-limit';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { isRedisStore, type Store } from '../../gateway/sdk/index.ts';

export type Algorithm = 'fixed' | 'sliding';

export interface LimitSpec {
  limit: number;
  windowMs: number;
  /** The window as written in routes.yaml (names the limit in the RateLimit headers). */
  window: string;
  algorithm: Algorithm;
}

/** Any SHA that is not loaded: EVALSHA with it answers NOSCRIPT, which makes rate-limit-redis load the script. */
const NOT_LOADED = '0'.repeat(40);

/**
 * rate-limit-redis loads its scripts once, when the limiter is built, and keeps the promise. Built while
 * Redis is unreachable (the gateway starts before Redis, or the client is still connecting) that promise
 * stays rejected and every later hit fails. Here a failed load yields a SHA that is not loaded, so the first
 * hit after Redis comes back gets NOSCRIPT and takes the library's own reload path — the same path it takes
 * after a Redis restart flushed the script cache.
 */
class ReconnectingRedisStore extends RedisStore {
  override loadIncrementScript(key?: string): Promise<string> {
    return super.loadIncrementScript(key).catch(() => NOT_LOADED);
  }
  override loadGetScript(key?: string): Promise<string> {
    return super.loadGetScript(key).catch(() => NOT_LOADED);
  }
}

/** A limiter's counters on the gateway's Store: the embedded memory store, or Redis for sliding windows. */
class SharedStoreCounters implements LimiterStore {
  readonly localKeys = false;
  constructor(
    private readonly store: Store,
    readonly prefix: string,
    private readonly spec: LimitSpec,
  ) {}

  async increment(key: string): Promise<IncrementResponse> {
    const { store, spec } = this;
    if (spec.algorithm === 'sliding') {
      const { count, resetMs } = await store.slidingHit(this.prefix + key, spec.windowMs, spec.limit);
      return { totalHits: count, resetTime: new Date(Date.now() + resetMs) };
    }
    const { count, ttlMs } = await store.incr(this.prefix + key, spec.windowMs);
    return { totalHits: count, resetTime: new Date(Date.now() + ttlMs) };
  }

  /** Only express-rate-limit's skipSuccessfulRequests/skipFailedRequests decrement; the policy never enables them. */
  decrement(): void {}

  async resetKey(key: string): Promise<void> {
    await this.store.del(this.prefix + key);
  }
}

/**
 * The counters of one limit. Each limit has its own namespace (algorithm, window, limit), so routes whose
 * policies name the same limit and key share one count, and a changed limit starts fresh counts.
 */
export function createCounters(store: Store, spec: LimitSpec): LimiterStore {
  const namespace = `rl:${spec.algorithm}:${spec.windowMs}:${spec.limit}:`;
  if (spec.algorithm === 'fixed' && isRedisStore(store)) {
    // Over the store's one client and its timeout: no second connection, no unbounded wait.
    return new ReconnectingRedisStore({ sendCommand: (...args: string[]) => store.command<RedisReply>(args), prefix: store.prefix + namespace });
  }
  return new SharedStoreCounters(store, namespace, spec);
}
