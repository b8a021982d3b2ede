import { createHash } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type ConsumerConfig, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { DeliveryAttempts, type CompiledSubscription } from './attempt.ts';
import type { CloudEvent, StoredEvent } from './types.ts';
import { matchesFilter, type SubscriptionRunner, type WorkerDeps } from './worker.ts';

const NS_PER_MS = 1_000_000;
/** Beyond one attempt's timeout, how long the server waits for an ack before it gives the event to another instance. */
const ACK_GRACE_MS = 2000;
const LAG_INTERVAL_MS = 2000;

/** What the worker needs from the JetStream engine (its connection, stream and subject layout). */
export interface JetStreamHandle {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  partitions: number;
  partitionSubject(p: number): string;
}

/** Consumer names allow no dots: `<id>` with dots replaced, plus a short hash when that could collide. */
export function consumerBase(subscription: string): string {
  const safe = subscription.replace(/[^A-Za-z0-9_-]/g, '_');
  return safe === subscription ? `hcgw_${safe}` : `hcgw_${safe}_${createHash('sha256').update(subscription).digest('hex').slice(0, 6)}`;
}

/**
 * Server-side retry schedule: the ack wait of delivery n (an attempt that never ended, e.g. its instance
 * died) is the attempt timeout plus the n-th backoff step. JetStream needs max_deliver > backoff steps.
 */
function retryConfig(sub: CompiledSubscription): Pick<ConsumerConfig, 'ack_wait' | 'max_deliver' | 'backoff'> {
  const { retry, timeoutMs } = sub.config;
  const steps = Array.from({ length: retry.maxAttempts - 1 }, (_, i) => (timeoutMs + ACK_GRACE_MS + Math.min(retry.maxMs, retry.baseMs * 2 ** i)) * NS_PER_MS);
  // An empty list clears an earlier backoff (a reload down to one attempt).
  return { ack_wait: (timeoutMs + ACK_GRACE_MS) * NS_PER_MS, max_deliver: retry.maxAttempts, backoff: steps };
}

/**
 * Delivers one subscription from JetStream durable pull consumers, one per partition of the stream, each
 * with explicit ack and max_ack_pending 1: the server hands a partition's next event to exactly one
 * instance only after the previous one was acked, so every gateway on the stream shares the work and
 * events of one ordering key (one partition) stay in order. A failed attempt is nak'ed with the backoff
 * delay (the server holds it back); an attempt that never ends (instance gone) is redelivered by the server
 * after its ack wait; max_deliver bounds both. The last failed attempt dead-letters the event and ends it.
 */
export class JetStreamSubscriptionWorker implements SubscriptionRunner {
  private readonly attempts: DeliveryAttempts;
  private readonly stop$ = new AbortController();
  private readonly loops = new Set<Promise<void>>();
  private readonly iterators = new Set<ConsumerMessages>();
  private readonly inFlight = new Set<JsMsg>();
  private advisories?: Subscription;
  private lagTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private sub: CompiledSubscription,
    private readonly deps: WorkerDeps,
    private readonly h: JetStreamHandle,
  ) {
    this.attempts = new DeliveryAttempts(deps);
  }

  get id(): string {
    return this.sub.config.id;
  }

  private partitionConsumer(p: number): string {
    return `${consumerBase(this.id)}_p${String(p).padStart(3, '0')}`;
  }

  update(sub: CompiledSubscription): void {
    this.sub = sub;
    // New retry settings take effect on the server for the next deliveries.
    for (let p = 0; p < this.h.partitions; p++) void this.updateRetry(this.partitionConsumer(p));
  }

  /** Creates the durable consumer, or brings an existing one's retry settings up to date. */
  private async ensureConsumer(name: string, cfg: Partial<ConsumerConfig>): Promise<void> {
    try {
      await this.h.jsm.consumers.info(this.h.stream, name);
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await this.h.jsm.consumers.add(this.h.stream, { durable_name: name, ack_policy: AckPolicy.Explicit, max_ack_pending: 1, ...retryConfig(this.sub), ...cfg });
      return;
    }
    await this.updateRetry(name);
  }

  /** Settings the server will not take keep the old ones: delivery goes on, the operator is told. */
  private async updateRetry(name: string): Promise<void> {
    try {
      await this.h.jsm.consumers.update(this.h.stream, name, retryConfig(this.sub));
    } catch (err) {
      this.deps.logger.warn('jetstream consumer settings not updated', { subscription: this.id, consumer: name, error: (err as Error).message });
    }
  }

  async start(): Promise<void> {
    for (let p = 0; p < this.h.partitions; p++) {
      const name = this.partitionConsumer(p);
      // A new subscription starts at the beginning of the stream, as with the embedded engine.
      await this.ensureConsumer(name, { deliver_policy: DeliverPolicy.All, filter_subject: this.h.partitionSubject(p) });
      this.run(name);
    }
    // Resends still open when a gateway stopped are durable consumers too: carry them on.
    for await (const ci of this.h.jsm.consumers.list(this.h.stream)) {
      const to = resendEnd(ci.config.description);
      if (ci.name.startsWith(`${consumerBase(this.id)}_resend_`) && to !== undefined) this.run(ci.name, to);
    }
    // An event whose deliveries ran out while no attempt of ours ended (instances gone) is dead-lettered here.
    this.advisories = this.h.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${this.h.stream}.>`, { callback: (_e, m) => void this.onMaxDeliveries(m.json<{ consumer: string; stream_seq: number; deliveries: number }>()) });
    this.lagTimer = setInterval(() => void this.updateLag(), LAG_INTERVAL_MS).unref();
  }

  private run(consumer: string, resendTo?: number): void {
    const loop = this.consume(consumer, resendTo)
      .catch((err: Error) => {
        if (!this.stopped) this.deps.logger.error('jetstream consumer stopped', { subscription: this.id, consumer, error: err.message });
      })
      .finally(() => this.loops.delete(loop));
    this.loops.add(loop);
  }

  private async consume(consumer: string, resendTo?: number): Promise<void> {
    const c = await this.h.js.consumers.get(this.h.stream, consumer);
    // A pull for two keeps a request waiting at the server, so the next event comes as soon as this one is acked.
    const messages = await c.consume({ max_messages: 2 });
    this.iterators.add(messages);
    try {
      for await (const m of messages) {
        if (this.stopped) {
          m.nak();
          break;
        }
        await this.handle(m, resendTo !== undefined);
        if (resendTo !== undefined && m.seq >= resendTo) {
          await this.h.jsm.consumers.delete(this.h.stream, consumer).catch(() => undefined);
          break;
        }
      }
    } finally {
      this.iterators.delete(messages);
    }
  }

  private async handle(m: JsMsg, resend: boolean): Promise<void> {
    this.inFlight.add(m);
    try {
      const ev: StoredEvent = { sequence: m.seq, storedAt: Math.floor(m.info.timestampNanos / NS_PER_MS), event: m.json<CloudEvent>() };
      if (!matchesFilter(this.sub.config.filter, ev.event)) return m.ack();
      const attempt = m.info.deliveryCount;
      const { maxAttempts } = this.sub.config.retry;
      // An open circuit holds the event (and its partition) here, telling the server we are still on it.
      for (let wait = this.attempts.breakerWaitMs(); wait > 0 && !this.stopped; wait = this.attempts.breakerWaitMs()) {
        m.working();
        await this.sleep(Math.min(wait, ACK_GRACE_MS / 2));
      }
      if (this.stopped) return m.nak();
      const outcome = await this.attempts.once(this.sub, ev, this.stop$.signal);
      if (outcome.kind === 'done') return m.ack();
      // Stopping mid-send: another instance takes the event at once (it may have arrived: a duplicate).
      if (this.stopped) return m.nak();
      if (attempt < maxAttempts) {
        this.deps.metrics.retried.inc({ subscription: this.id });
        return m.nak(this.attempts.backoffMs(this.sub, attempt));
      }
      await this.attempts.deadLetter(this.deps.log, this.sub, ev, outcome.error, attempt);
      m.term(resend ? 'resend failed' : 'retries exhausted');
    } finally {
      this.inFlight.delete(m);
    }
  }

  private async onMaxDeliveries(a: { consumer: string; stream_seq: number; deliveries: number }): Promise<void> {
    if (!a.consumer.startsWith(`${consumerBase(this.id)}_`)) return;
    const [ev] = await this.deps.log.read(a.stream_seq, 1).catch(() => []);
    if (ev && ev.sequence === a.stream_seq) await this.attempts.deadLetter(this.deps.log, this.sub, ev, 'no attempt ended (instances stopped?)', a.deliveries, 'max-deliver').catch(() => undefined);
  }

  /**
   * Delivers the stream from `sequences[0]` to its last again (resend, dead-letter retry) through a
   * durable consumer of its own, so a restart carries it on; returns the count of sequences in the range.
   */
  async resend(sequences: number[]): Promise<number> {
    if (!sequences.length) return 0;
    const from = Math.min(...sequences);
    const to = Math.max(...sequences);
    const name = `${consumerBase(this.id)}_resend_${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
    await this.ensureConsumer(name, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from, filter_subject: `${this.h.stream}.>`, description: JSON.stringify({ resendTo: to }) });
    this.run(name, to);
    return to - from + 1;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.stop$.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }

  /** Events not yet acked by this subscription, over all its partition consumers. */
  private async pending(): Promise<number> {
    let n = 0;
    for (let p = 0; p < this.h.partitions; p++) {
      const ci = await this.h.jsm.consumers.info(this.h.stream, this.partitionConsumer(p));
      n += ci.num_pending + ci.num_ack_pending;
    }
    return n;
  }

  private async updateLag(): Promise<void> {
    const n = await this.pending().catch(() => undefined);
    if (n !== undefined) this.deps.metrics.lag.set({ subscription: this.id }, n);
  }

  /** Resolves when the server holds nothing undelivered for this subscription (tests, benchmarks). */
  async drained(): Promise<void> {
    while (!this.stopped && ((await this.pending()) > 0 || this.inFlight.size > 0)) await this.sleep(20);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stop$.abort();
    clearInterval(this.lagTimer);
    this.advisories?.unsubscribe();
    for (const it of this.iterators) it.stop();
    await Promise.allSettled([...this.loops]);
  }
}

function resendEnd(description: string | undefined): number | undefined {
  try {
    const to = (JSON.parse(description ?? '') as { resendTo?: unknown }).resendTo;
    return typeof to === 'number' ? to : undefined;
  } catch {
    return undefined;
  }
}
