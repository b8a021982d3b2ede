import type { Logger } from 'winston';
import { auditAttempt, runSubscriptionChain } from './event-exchange.ts';
import type { EventMetrics } from './metrics.ts';
import { DeliveryFailed } from './senders.ts';
import type { EventLog, StoredEvent } from './types.ts';
import type { CompiledRoute } from '../sdk/types.ts';
import type { SubscriptionConfig } from './config.ts';
import type { Sender } from './senders.ts';

/** A subscription as compiled from the config: its settings, its policy chain (as a route) and its sender. */
export interface CompiledSubscription {
  readonly config: SubscriptionConfig;
  readonly route: CompiledRoute;
  readonly sender: Sender;
}

export type AttemptOutcome = { kind: 'done' } | { kind: 'failed'; error: string };

/**
 * One delivery attempt of one event to one subscriber (policy chain, send, audit, metrics) and the
 * subscription's circuit breaker. Both engines' workers use it: the embedded worker loops attempts in
 * process; the JetStream worker makes one attempt per server delivery and leaves redelivery to the server.
 */
export class DeliveryAttempts {
  private consecutiveFailures = 0;
  private openUntil = 0;

  constructor(private readonly deps: { metrics: EventMetrics; logger: Logger; random?: () => number }) {}

  /** How long the circuit breaker still holds deliveries back (0: closed). */
  breakerWaitMs(): number {
    return Math.max(0, this.openUntil - Date.now());
  }

  /** Exponential backoff with full jitter (random() × cap) before attempt `attempt + 1`. */
  backoffMs(sub: CompiledSubscription, attempt: number): number {
    const { baseMs, maxMs } = sub.config.retry;
    return Math.floor((this.deps.random ?? Math.random)() * Math.min(maxMs, baseMs * 2 ** (attempt - 1)));
  }

  /** done: delivered or withheld by a policy (nothing to retry); failed: the sender or a policy failed. */
  async once(sub: CompiledSubscription, ev: StoredEvent, signal: AbortSignal): Promise<AttemptOutcome> {
    const { config, route, sender } = sub;
    const m = this.deps.metrics;
    const outcome = await runSubscriptionChain(config, route, ev);
    let error: string;
    if (outcome.kind === 'denied') {
      m.withheld.inc({ subscription: config.id, policy: outcome.ex.deniedBy ?? 'unknown' });
      await auditAttempt(outcome.ex, outcome.error.status, this.deps.logger, outcome.error.code);
      return { kind: 'done' };
    }
    if (outcome.kind === 'deliver') {
      try {
        await sender.send({ ...ev.event, data: outcome.data }, ev.sequence, AbortSignal.any([AbortSignal.timeout(config.timeoutMs), signal]));
        this.consecutiveFailures = 0;
        m.delivered.inc({ subscription: config.id, type: ev.event.type });
        m.latency.observe({ subscription: config.id }, (Date.now() - ev.storedAt) / 1000);
        await auditAttempt(outcome.ex, 200, this.deps.logger);
        return { kind: 'done' };
      } catch (err) {
        error = err instanceof DeliveryFailed ? err.detail : 'error';
        if (signal.aborted) return { kind: 'failed', error };
        await auditAttempt(outcome.ex, 502, this.deps.logger, error);
      }
    } else {
      error = `policy ${outcome.ex.deniedBy ?? ''}: ${outcome.error.code}`;
      await auditAttempt(outcome.ex, outcome.error.status, this.deps.logger, outcome.error.code);
    }
    m.failed.inc({ subscription: config.id });
    if (++this.consecutiveFailures >= config.circuitBreaker.failures) this.openUntil = Date.now() + config.circuitBreaker.openMs;
    return { kind: 'failed', error };
  }

  async deadLetter(log: EventLog, sub: CompiledSubscription, ev: StoredEvent, lastError: string, attempts: number, reason = 'retries-exhausted'): Promise<void> {
    const id = sub.config.id;
    await log.addDeadLetter({ id: `${id}:${ev.sequence}`, subscription: id, sequence: ev.sequence, event: ev.event, reason, lastError, attempts, at: new Date().toISOString() });
    this.deps.metrics.deadLettered.inc({ subscription: id });
  }
}
