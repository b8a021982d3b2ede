import type { Logger } from 'winston';
import { GatewayError, ServiceUnavailable } from '../sdk/errors.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { UpstreamConfig } from '../sdk/types.ts';

/** RFC 9110 §9.2.2: repeating these has the effect of sending them once. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

/** Failures after which the upstream never produced a response: the only errors worth retrying. */
const TRANSIENT_REASONS = new Set(['connect', 'reset', 'timeout']);

/** Reason of the error an upstream call rejects with when the caller aborted it (the client left). */
export const ABORTED = 'aborted';

export type BreakerState = 'closed' | 'open' | 'half-open';
const STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface CircuitBreaker {
  readonly state: BreakerState;
  /** Throws a 503 (reason `circuit-open`) when no call may go out; when half-open it admits a single probe. */
  admit(): void;
  success(): void;
  failure(): void;
  /** The admitted call ended without telling anything about the upstream (the client left): frees the probe slot. */
  abandon(): void;
}

export interface BreakerOptions {
  failures: number;
  windowMs: number;
  openMs: number;
  /** A probe that has not reported after this long no longer blocks the next one. */
  probeLeaseMs: number;
  now?: () => number;
  onChange?: (state: BreakerState) => void;
  /** A call was refused without reaching the upstream. */
  onRefuse?: () => void;
}

/**
 * Closed → open after `failures` failures within `windowMs`; open answers 503 without calling the upstream
 * for `openMs`; then half-open lets exactly one probe through: its success closes, its failure re-opens.
 */
export function createCircuitBreaker(opts: BreakerOptions): CircuitBreaker {
  const now = opts.now ?? Date.now;
  let state: BreakerState = 'closed';
  let recent: number[] = [];
  let openedAt = 0;
  let probeSince: number | undefined;
  const enter = (next: BreakerState) => {
    if (next === state) return;
    state = next;
    opts.onChange?.(next);
  };
  const open = (t: number) => {
    recent = [];
    openedAt = t;
    probeSince = undefined;
    enter('open');
  };
  const refuse = (t: number) => {
    opts.onRefuse?.();
    const waitMs = Math.max(0, openedAt + opts.openMs - t);
    return new ServiceUnavailable({
      detail: 'The upstream service is temporarily unavailable',
      reason: 'circuit-open',
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
    });
  };
  return {
    get state() {
      return state;
    },
    admit() {
      const t = now();
      if (state === 'open') {
        if (t - openedAt < opts.openMs) throw refuse(t);
        enter('half-open');
      }
      if (state === 'half-open') {
        if (probeSince !== undefined && t - probeSince < opts.probeLeaseMs) throw refuse(t);
        probeSince = t;
      }
    },
    success() {
      if (state !== 'half-open') return;
      recent = [];
      probeSince = undefined;
      enter('closed');
    },
    failure() {
      const t = now();
      if (state === 'half-open') return open(t);
      if (state === 'open') return;
      recent.push(t);
      while (recent.length && recent[0] <= t - opts.windowMs) recent.shift();
      if (recent.length >= opts.failures) open(t);
    },
    abandon() {
      if (state === 'half-open') probeSince = undefined;
    },
  };
}

/**
 * Full jitter (the AWS Architecture Blog's "Exponential Backoff And Jitter"): a uniform wait in
 * [0, min(cap, base·2^(n-1))], so clients that failed together do not retry together.
 */
export function backoffMs(retry: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** (retry - 1)));
}

/** Per-upstream retry budget and breaker, built once with the upstream at config load. */
export interface UpstreamResilience {
  readonly breaker?: CircuitBreaker;
  /** Retries this request may get: 0 unless repeating it is safe. */
  retriesFor(method: string, hasIdempotencyKey: boolean): number;
  backoffMs(retry: number): number;
  noteRetry(): void;
}

export function createResilience(
  name: string,
  config: UpstreamConfig,
  deps: { metrics?: Metrics; logger?: Logger; random?: () => number; now?: () => number } = {},
): UpstreamResilience {
  const { metrics, logger } = deps;
  const retries = config.retries ?? 0;
  const base = config.retryBackoffMs ?? 100;
  const cap = config.retryBackoffMaxMs ?? 2000;
  const cb = config.circuitBreaker;
  const breaker = cb
    ? createCircuitBreaker({
        failures: cb.failures,
        windowMs: cb.windowMs ?? 10_000,
        openMs: cb.openMs ?? 5000,
        probeLeaseMs: (config.timeoutMs ?? 10_000) + 1000,
        now: deps.now,
        onChange(state) {
          metrics?.circuitTransitions.inc({ upstream: name, state });
          metrics?.circuitState.set({ upstream: name }, STATE_VALUE[state]);
          logger?.log(state === 'open' ? 'warn' : 'info', `circuit ${state}`, { upstream: name });
        },
        onRefuse: () => metrics?.upstreamErrors.inc({ upstream: name, kind: 'circuit-open' }),
      })
    : undefined;
  if (breaker) metrics?.circuitState.set({ upstream: name }, 0);
  return {
    breaker,
    retriesFor(method, hasIdempotencyKey) {
      return IDEMPOTENT_METHODS.has(method) || (hasIdempotencyKey && config.honorsIdempotencyKey === true) ? retries : 0;
    },
    backoffMs: (retry) => backoffMs(retry, base, cap, deps.random),
    noteRetry: () => metrics?.upstreamRetries.inc({ upstream: name }),
  };
}

const reasonOf = (err: unknown) => (err instanceof GatewayError ? err.reason : undefined);
export const isTransient = (err: unknown) => TRANSIENT_REASONS.has(reasonOf(err) ?? '');
export const isAborted = (err: unknown) => reasonOf(err) === ABORTED;

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface ResilientCall {
  /** From `retriesFor`. */
  retries: number;
  /** Whether a 5xx answer may be retried: false once its bytes may already be on their way to the client. */
  retryOn5xx: boolean;
  signal?: AbortSignal;
}

/**
 * Reports a non-5xx answer to the breaker. When the body is still on its way (`done`), the verdict waits
 * for it: an upstream that resets, truncates or stalls after its headers is failing, and a half-open
 * probe that hits such a body must re-open the breaker, not close it.
 */
function judgeAnswer(breaker: CircuitBreaker | undefined, done: Promise<unknown> | undefined): void {
  if (!breaker) return;
  if (!done) return breaker.success();
  done.then(
    () => breaker.success(),
    (err: unknown) => (isAborted(err) ? breaker.abandon() : breaker.failure()),
  );
}

/**
 * Runs `attempt` under the upstream's breaker and retry budget. `attempt` resolves once the upstream
 * answered (its status, then its body's `done` when given, decide success), or rejects with a
 * GatewayError; only transient errors (and 5xx when allowed) are retried, after a jittered backoff, never
 * once the caller aborted.
 */
export async function callResilient<T extends { status: number; done?: Promise<unknown> }>(r: UpstreamResilience, call: ResilientCall, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    r.breaker?.admit();
    let value: T;
    try {
      value = await attempt();
    } catch (err) {
      if (isAborted(err) || call.signal?.aborted) {
        r.breaker?.abandon();
        throw err;
      }
      r.breaker?.failure();
      if (n >= call.retries || !isTransient(err)) throw err;
      r.noteRetry();
      await pause(r.backoffMs(n + 1), call.signal);
      if (call.signal?.aborted) throw err;
      continue;
    }
    if (value.status < 500) {
      judgeAnswer(r.breaker, value.done);
      return value;
    }
    r.breaker?.failure();
    if (!call.retryOn5xx || n >= call.retries || call.signal?.aborted) return value;
    r.noteRetry();
    await pause(r.backoffMs(n + 1), call.signal);
    if (call.signal?.aborted) return value;
  }
}
