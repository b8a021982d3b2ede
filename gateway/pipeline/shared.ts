import type { SharedKey, SharedResources } from '../sdk/types.ts';

/**
 * One per compiled config: policies of different routes that must share something live (lane semaphores)
 * find it here. Created by the compiler and injected through the policy context — never a module singleton,
 * so two gateways in one process (tests) or a reloaded config never share state by accident.
 */
export function createSharedResources(): SharedResources {
  const byKey = new Map<SharedKey<unknown>, unknown>();
  return {
    get<T>(key: SharedKey<T>): T {
      if (!byKey.has(key)) byKey.set(key, key.create());
      return byKey.get(key) as T;
    },
  };
}
