import type { ErrorReply } from 'redis';
import { StoreUnavailable } from './types.ts';

/**
 * Redis's error-reply class, recorded by redis.ts when it is imported (only for a redis store, to spare
 * memory-store gateways the client library). Before that no ErrorReply can exist, so the check stays exact.
 */
let errorReply: typeof ErrorReply | undefined;

export function recordErrorReply(cls: typeof ErrorReply): void {
  errorReply = cls;
}

/**
 * A failure of the shared store itself: unreachable, timed out, or Redis refusing a command (OOM, READONLY…).
 * Anything else thrown around a store call is a fault in the caller's code, which a fail mode must not hide.
 */
export const isStoreFailure = (err: unknown): boolean => err instanceof StoreUnavailable || (errorReply !== undefined && err instanceof errorReply);
