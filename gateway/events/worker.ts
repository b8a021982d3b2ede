import type { Logger } from 'winston';
import type { SubscriptionConfig } from './config.ts';
import { DeliveryAttempts, type CompiledSubscription } from './attempt.ts';
import type { EventMetrics } from './metrics.ts';
import type { EventLog, StoredEvent } from './types.ts';

export type { CompiledSubscription } from './attempt.ts';

export interface WorkerDeps {
  log: EventLog;
  metrics: EventMetrics;
  logger: Logger;
  maxInFlight: number;
  /** Injected for tests of the backoff (full jitter: random() × cap). */
  random?: () => number;
}

/** What the backbone runs per subscription: the embedded engine's worker, or an engine's own (JetStream). */
export interface SubscriptionRunner {
  readonly id: string;
  /** A reload hands over the new chain and sender; events in flight finish with the old ones. */
  update(sub: CompiledSubscription): void;
  start(): Promise<void>;
  /** Delivers these sequences again (resend, dead-letter retry); returns how many were queued. */
  resend(sequences: number[]): Promise<number>;
  drained(): Promise<void>;
  stop(): Promise<void>;
}

/** An engine that delivers subscriptions itself (JetStream durable consumers) instead of by checkpoints. */
export interface RunnerFactory {
  createRunner(sub: CompiledSubscription, deps: WorkerDeps): SubscriptionRunner;
}

export const hasOwnRunner = (log: EventLog): log is EventLog & RunnerFactory => typeof (log as Partial<RunnerFactory>).createRunner === 'function';

const READ_BATCH = 256;
/** Checkpoints wait this long to take more completions along: fewer fsyncs, a little more redelivery after a crash. */
const CHECKPOINT_DELAY_MS = 50;

/** Does this event go to this subscription at all? Type, attributes (all listed must match), patient. */
export function matchesFilter(f: SubscriptionConfig['filter'], e: StoredEvent['event']): boolean {
  if (!f.types.includes(e.type)) return false;
  if (f.patient !== undefined && e.patient !== f.patient) return false;
  for (const [attr, accepted] of Object.entries(f.attributes)) {
    const v = e[attr];
    if (v === undefined || !accepted.includes(v as string)) return false;
  }
  return true;
}

/**
 * Delivers one subscription's events: reads the log from its checkpoint, queues each matching event under
 * its ordering key (one at a time per key, `concurrency` keys at once), runs the policy chain, sends with
 * retries (exponential backoff, full jitter) behind a circuit breaker, dead-letters after the last attempt,
 * and checkpoints what is done. A crash redelivers what was not checkpointed: at-least-once.
 */
export class SubscriptionWorker implements SubscriptionRunner {
  private next = 1;
  private readonly doneAbove = new Set<number>();
  private readPos = 1;
  private pending = 0;
  private readonly queues = new Map<string, StoredEvent[]>();
  private readonly runnable: string[] = [];
  private active = 0;
  private pumping = false;
  private pumpAgain = false;
  private stopped = false;
  private readonly stop$ = new AbortController();
  private saving?: Promise<void>;
  private saveAgain = false;
  private redo: number[] = [];
  private idle: Array<() => void> = [];
  private unsubscribe?: () => void;

  private readonly attempts: DeliveryAttempts;

  constructor(
    private sub: CompiledSubscription,
    private readonly deps: WorkerDeps,
  ) {
    this.attempts = new DeliveryAttempts(deps);
  }

  get id(): string {
    return this.sub.config.id;
  }

  /** A reload hands over the new chain and sender; events in flight finish with the old ones. */
  update(sub: CompiledSubscription): void {
    this.sub = sub;
  }

  async start(): Promise<void> {
    const cp = await this.deps.log.loadCheckpoint(this.id);
    if (cp) {
      this.next = cp.next;
      for (const s of cp.doneAbove) this.doneAbove.add(s);
      this.redo = cp.redo ?? [];
    }
    this.readPos = this.next;
    this.unsubscribe = this.deps.log.onAppend(() => void this.pump());
    if (this.redo.length) await this.enqueueSequences(this.redo, false);
    void this.pump();
  }

  /** Delivers these sequences again (resend, dead-letter retry); persisted first, so a restart still does it. */
  async resend(sequences: number[]): Promise<number> {
    this.redo = [...new Set([...this.redo, ...sequences])];
    await this.save();
    return this.enqueueSequences(sequences, true);
  }

  private async enqueueSequences(sequences: number[], filter: boolean): Promise<number> {
    let queued = 0;
    for (const seq of [...sequences].sort((a, b) => a - b)) {
      const [ev] = await this.deps.log.read(seq, 1);
      if (!ev || (filter && !matchesFilter(this.sub.config.filter, ev.event))) {
        this.finishRedo(seq);
        continue;
      }
      this.enqueue(ev, true);
      queued++;
    }
    return queued;
  }

  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (!this.stopped && this.pending < this.deps.maxInFlight) {
          const batch = await this.deps.log.read(this.readPos, Math.min(READ_BATCH, this.deps.maxInFlight - this.pending));
          if (!batch.length) break;
          for (const ev of batch) {
            this.readPos = ev.sequence + 1;
            if (ev.sequence < this.next || this.doneAbove.has(ev.sequence)) continue;
            if (matchesFilter(this.sub.config.filter, ev.event)) this.enqueue(ev, false);
            else this.markDone(ev.sequence);
          }
        }
      } while (this.pumpAgain && !this.stopped);
    } catch (err) {
      this.deps.logger.error('event log read failed', { subscription: this.id, error: (err as Error).message });
      setTimeout(() => void this.pump(), 1000).unref();
    } finally {
      this.pumping = false;
      void this.updateLag();
    }
  }

  private keyOf(ev: StoredEvent): string {
    const v = ev.event[this.sub.config.orderBy] ?? ev.event.patient;
    return typeof v === 'string' || typeof v === 'number' ? `k:${v}` : `s:${ev.sequence}`;
  }

  private enqueue(ev: StoredEvent, redo: boolean): void {
    this.pending++;
    const key = this.keyOf(ev);
    const q = this.queues.get(key);
    const item = redo ? Object.assign({}, ev, { redo: true }) : ev;
    if (q) q.push(item);
    else {
      this.queues.set(key, [item]);
      this.runnable.push(key);
      this.schedule();
    }
  }

  private schedule(): void {
    while (!this.stopped && this.active < this.sub.config.concurrency && this.runnable.length) {
      const key = this.runnable.shift()!;
      this.active++;
      void this.runKey(key);
    }
  }

  private async runKey(key: string): Promise<void> {
    const q = this.queues.get(key)!;
    while (q.length && !this.stopped) {
      const ev = q[0] as StoredEvent & { redo?: boolean };
      await this.process(ev);
      if (this.stopped) break;
      q.shift();
      this.pending--;
      if (ev.redo) this.finishRedo(ev.sequence);
      else this.markDone(ev.sequence);
    }
    if (!q.length) this.queues.delete(key);
    this.active--;
    if (!this.stopped) {
      this.schedule();
      void this.pump();
    }
    if (this.active === 0) for (const r of this.idle.splice(0)) r();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.stop$.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }

  /** One event to one subscriber: attempts until delivered, withheld or dead-lettered. */
  private async process(ev: StoredEvent): Promise<void> {
    const { maxAttempts } = this.sub.config.retry;
    let lastError = '';
    for (let attempt = 1; attempt <= maxAttempts && !this.stopped; attempt++) {
      const wait = this.attempts.breakerWaitMs();
      if (wait > 0) await this.sleep(wait);
      if (this.stopped) return;
      const outcome = await this.attempts.once(this.sub, ev, this.stop$.signal);
      if (outcome.kind === 'done' || this.stopped) return;
      lastError = outcome.error;
      if (attempt < maxAttempts) {
        this.deps.metrics.retried.inc({ subscription: this.id });
        await this.sleep(this.attempts.backoffMs(this.sub, attempt));
      }
    }
    if (!this.stopped) await this.attempts.deadLetter(this.deps.log, this.sub, ev, lastError, maxAttempts);
  }

  private markDone(seq: number): void {
    if (seq < this.next) return;
    if (seq === this.next) {
      this.next++;
      while (this.doneAbove.delete(this.next)) this.next++;
    } else this.doneAbove.add(seq);
    void this.save();
  }

  private finishRedo(seq: number): void {
    this.redo = this.redo.filter((s) => s !== seq);
    void this.save();
  }

  /** Checkpoints coalesce: at most one write in flight, one more queued behind it. */
  private save(): Promise<void> {
    if (this.saving) {
      this.saveAgain = true;
      return this.saving;
    }
    this.saving = (async () => {
      if (!this.stopped) await new Promise((r) => setTimeout(r, CHECKPOINT_DELAY_MS));
      do {
        this.saveAgain = false;
        await this.deps.log
          .saveCheckpoint(this.id, { next: this.next, doneAbove: [...this.doneAbove], redo: this.redo })
          .catch((err: Error) => this.deps.logger.error('checkpoint failed', { subscription: this.id, error: err.message }));
      } while (this.saveAgain);
      this.saving = undefined;
    })();
    return this.saving;
  }

  private async updateLag(): Promise<void> {
    const head = await this.deps.log.lastSequence().catch(() => undefined);
    if (head !== undefined) this.deps.metrics.lag.set({ subscription: this.id }, Math.max(0, head + 1 - this.next - this.doneAbove.size));
  }

  /** Resolves when nothing is queued or in flight (tests, graceful shutdown). */
  async drained(): Promise<void> {
    while (this.pending > 0 || this.pumping) await new Promise<void>((r) => (this.active ? this.idle.push(r) : setTimeout(r, 10)));
    await this.saving;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stop$.abort();
    this.unsubscribe?.();
    while (this.active > 0) await new Promise<void>((r) => this.idle.push(r));
    await this.save();
  }
}
