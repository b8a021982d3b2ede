import { randomUUID } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'winston';
import type { Registry } from 'prom-client';
import type { CompiledEvents } from './compile.ts';
import type { EventsConfig } from './config.ts';
import { FileEventLog } from './file-log.ts';
import { eventMetrics, type EventMetrics } from './metrics.ts';
import { EventRefused } from './schemas.ts';
import { SlaTracker } from './sla.ts';
import type { CloudEvent, DeadLetter, EventLog, EventPublisher, PublishReceipt, StoredEvent } from './types.ts';
import { hasOwnRunner, SubscriptionWorker, type CompiledSubscription, type SubscriptionRunner, type WorkerDeps } from './worker.ts';
import { runSubscriptionChain } from './event-exchange.ts';

/** Opens the engine the config names (JetStream is loaded only when used). */
export async function openEventLog(engine: EventsConfig['engine'], configDir: string): Promise<EventLog> {
  if (engine.kind === 'jetstream') {
    const { JetStreamEventLog } = await import('./jetstream-log.ts');
    return JetStreamEventLog.open({ servers: engine.servers, stream: engine.stream, partitions: engine.partitions });
  }
  return FileEventLog.open(resolve(configDir, engine.dir));
}

/**
 * The running event backbone: one log, one worker per subscription, the governed publisher. It outlives
 * config reloads: `apply()` hands each worker its newly compiled subscription.
 */
export class EventBackbone implements EventPublisher {
  readonly metrics: EventMetrics;
  private readonly workers = new Map<string, SubscriptionRunner>();
  private compiled?: CompiledEvents;
  private sla?: SlaTracker;

  constructor(
    readonly log: EventLog,
    private readonly deps: { logger: Logger; registry: Registry; random?: () => number },
  ) {
    this.metrics = eventMetrics(deps.registry);
  }

  async apply(compiled: CompiledEvents | undefined): Promise<void> {
    this.compiled = compiled;
    const subs = compiled?.subscriptions ?? new Map();
    for (const [id, w] of this.workers) {
      if (!subs.has(id)) {
        await w.stop();
        this.workers.delete(id);
      }
    }
    for (const [id, sub] of subs) {
      const existing = this.workers.get(id);
      if (existing) existing.update(sub);
      else {
        const deps: WorkerDeps = { log: this.log, metrics: this.metrics, logger: this.deps.logger, maxInFlight: compiled!.config.maxInFlight, random: this.deps.random };
        const w = hasOwnRunner(this.log) ? this.log.createRunner(sub, deps) : new SubscriptionWorker(sub, deps);
        this.workers.set(id, w);
        await w.start();
      }
    }
    this.sla?.close();
    this.sla = compiled?.config.sla.length ? new SlaTracker(compiled.config.sla, this, this.metrics) : undefined;
  }

  /**
   * Validates the envelope and its data against the declared schema, then stores it; resolves only once
   * durable. A refused event is dead-lettered with its reason and the promise rejects with EventRefused.
   */
  async publish(event: CloudEvent): Promise<PublishReceipt> {
    const schemas = this.compiled?.schemas;
    if (!schemas) throw new EventRefused('unknown-type', 'no events section is configured');
    let checked: CloudEvent;
    try {
      checked = schemas.check(event);
    } catch (err) {
      if (!(err instanceof EventRefused)) throw err;
      const id = typeof (event as { id?: unknown })?.id === 'string' ? (event as { id: string }).id : randomUUID();
      await this.log.addDeadLetter({ id: `schema:${id}`, event, reason: err.reason, lastError: err.message, attempts: 0, at: new Date().toISOString() });
      this.metrics.refused.inc({ reason: err.reason });
      throw err;
    }
    const receipt = await this.log.publish(checked);
    if (receipt.stored) {
      this.metrics.published.inc({ type: checked.type });
      this.sla?.observe(checked);
    }
    return receipt;
  }

  subscription(id: string): CompiledSubscription | undefined {
    return this.compiled?.subscriptions.get(id);
  }

  /** The event as this subscriber may see it (its policy chain applied), or undefined when withheld. */
  async render(subscription: string, stored: StoredEvent): Promise<CloudEvent | undefined> {
    const sub = this.subscription(subscription);
    if (!sub) return undefined;
    const outcome = await runSubscriptionChain(sub.config, sub.route, stored);
    return outcome.kind === 'deliver' ? { ...stored.event, data: outcome.data } : undefined;
  }

  /** Sequences in [from, to] delivered again to one subscription (matching its filter). */
  async resend(subscription: string, from: number | Date, to?: number | Date): Promise<number> {
    const w = this.workers.get(subscription);
    if (!w) throw new Error(`unknown subscription "${subscription}"`);
    return w.resend(await sequenceRange(this.log, from, to));
  }

  async retryDeadLetter(id: string): Promise<boolean> {
    const dl = (await this.log.deadLetters()).find((d) => d.id === id);
    const w = dl?.subscription ? this.workers.get(dl.subscription) : undefined;
    if (!dl || !w || dl.sequence === undefined) return false;
    await this.log.removeDeadLetter(id);
    await w.resend([dl.sequence]);
    return true;
  }

  deadLetters(subscription?: string): Promise<DeadLetter[]> {
    return this.log.deadLetters(subscription);
  }

  ready(): Promise<boolean> {
    return this.log.ready();
  }

  /** Waits until every worker has nothing queued (tests and benchmarks). */
  async drained(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.drained()));
  }

  async close(): Promise<void> {
    this.sla?.close();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    this.workers.clear();
    await this.log.close();
  }
}

/** Resolves a from/to given as sequences or times to the list of sequences (bounded by the log head). */
export async function sequenceRange(log: EventLog, from: number | Date, to?: number | Date): Promise<number[]> {
  const start = typeof from === 'number' ? from : await log.sequenceAt(from);
  const head = await log.lastSequence();
  const end = to === undefined ? head : typeof to === 'number' ? Math.min(to, head) : (await log.sequenceAt(to)) - 1;
  const out: number[] = [];
  for (let s = Math.max(1, start); s <= end; s++) out.push(s);
  return out;
}

/** Opens the configured engine and starts the workers; undefined when the config has no `events:` section. */
export async function startEventBackbone(compiled: { events?: CompiledEvents; file: string }, logger: Logger, registry: Registry): Promise<EventBackbone | undefined> {
  if (!compiled.events) return undefined;
  const log = await openEventLog(compiled.events.config.engine, dirname(resolve(compiled.file)));
  const backbone = new EventBackbone(log, { logger, registry });
  await backbone.apply(compiled.events);
  logger.info('event backbone started', { engine: log.kind, subscriptions: compiled.events.subscriptions.size, head: await log.lastSequence() });
  return backbone;
}
