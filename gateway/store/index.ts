import type { Logger } from 'winston';
import type { StoreConfig } from '../sdk/types.ts';
import { createMemoryStore } from './memory.ts';
import type { RedisStore } from './redis.ts';
import type { Store } from './types.ts';

export type { Store } from './types.ts';
export type { RedisStore } from './redis.ts';
export { StoreUnavailable } from './types.ts';
export { isStoreFailure } from './failure.ts';

/** For users that speak Redis themselves (rate-limit-redis) over the store's one client. */
export function isRedisStore(store: Store): store is RedisStore {
  return store.kind === 'redis' && typeof (store as Partial<RedisStore>).command === 'function';
}

export async function createStore(config: StoreConfig, logger?: Logger, hooks: { onEvict?: () => void } = {}): Promise<Store> {
  if (config.kind === 'redis') {
    // Imported only for a redis store: its client is the heaviest library the gateway uses (10–17 MB resident).
    const { createRedisStore } = await import('./redis.ts');
    return createRedisStore({
      url: config.url ?? 'redis://127.0.0.1:6379',
      prefix: config.prefix,
      connectTimeoutMs: config.connectTimeoutMs,
      commandTimeoutMs: config.commandTimeoutMs,
      logger,
    });
  }
  return createMemoryStore({ maxEntries: config.maxEntries, onEvict: hooks.onEvict });
}
