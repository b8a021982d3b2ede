import { createHash } from 'node:crypto';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from '@nats-io/jetstream';
import type { CloudEvent, ConsumerCheckpoint, DeadLetter, EventLog, PublishReceipt, StoredEvent } from './types.ts';
import type { CompiledSubscription } from './attempt.ts';
import { JetStreamSubscriptionWorker, type JetStreamHandle } from './jetstream-worker.ts';
import type { SubscriptionRunner, WorkerDeps } from './worker.ts';

const subjectToken = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32);
const NS_PER_MS = 1_000_000;
/** Marks a stream with the partitioned subject layout (`<stream>._p<NNN>.<type>`) and its partition count. */
const LAYOUT = 'hcgw events layout 2';
const layoutOf = (partitions: number) => `${LAYOUT}; partitions ${partitions}`;
const partitionToken = (p: number) => `_p${String(p).padStart(3, '0')}`;

/** The stream cannot be used as configured (old subject layout, other partition count): start-up stops. */
export class JetStreamLayoutError extends Error {
  readonly code = 'ERR_JETSTREAM_LAYOUT';
  override name = 'JetStreamLayoutError';
}

/** Which partition an event goes to: a hash of its ordering key (`partitionkey`, else `patient`, else its id). */
export function partitionOf(event: CloudEvent, partitions: number): number {
  const key = event.partitionkey ?? event.patient ?? event.id;
  return createHash('sha256').update(key).digest().readUInt32BE(0) % partitions;
}

/** Creates the events stream, or checks that an existing one has this layout and partition count. */
async function ensureEventStream(jsm: JetStreamManager, name: string, partitions: number, duplicateWindowMs: number): Promise<void> {
  let info;
  try {
    info = await jsm.streams.info(name);
  } catch {
    await jsm.streams.add({ name, subjects: [`${name}.>`], storage: 'file', duplicate_window: duplicateWindowMs * NS_PER_MS, description: layoutOf(partitions) } as never);
    return;
  }
  const found = info.config.description ?? '';
  if (found === layoutOf(partitions)) return;
  if (found.startsWith(LAYOUT)) throw new JetStreamLayoutError(`stream ${name} was created with other partitions (${found}); engine.partitions must stay the same for the life of a stream`);
  if (info.state.messages > 0)
    throw new JetStreamLayoutError(`stream ${name} holds ${info.state.messages} events in the previous subject layout (<stream>.<type>); set engine.stream to a new name and let the previous version deliver the old stream (docs/events.md#migrating-a-jetstream-stream)`);
  await jsm.streams.update(name, { ...info.config, description: layoutOf(partitions) } as never);
}

/**
 * The scaled-out engine: one JetStream stream of events (file storage, deduplicated by event id through
 * `Nats-Msg-Id` within `duplicate_window`, subjects `<stream>._p<NNN>.<type>` by ordering partition), and
 * two small streams keeping checkpoints and dead letters (one subject each, `max_msgs_per_subject: 1`).
 * publish resolves on the server's PubAck, i.e. once the stream has stored the event. Subscriptions are
 * delivered by durable consumers (jetstream-worker.ts), so instances on one stream share them.
 */
export class JetStreamEventLog implements EventLog {
  readonly kind = 'jetstream';
  private readonly listeners = new Set<() => void>();
  private sub?: Subscription;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly partitions: number,
  ) {}

  /** Subscriptions are delivered by durable consumers on the server, shared by every instance. */
  createRunner(sub: CompiledSubscription, deps: WorkerDeps): SubscriptionRunner {
    const handle: JetStreamHandle = {
      nc: this.nc,
      js: this.js,
      jsm: this.jsm,
      stream: this.stream,
      partitions: this.partitions,
      partitionSubject: (p) => `${this.stream}.${partitionToken(p)}.>`,
    };
    return new JetStreamSubscriptionWorker(sub, deps, handle);
  }

  static async open(opts: { servers: string[]; stream: string; partitions?: number; duplicateWindowMs?: number }): Promise<JetStreamEventLog> {
    const nc = await connect({ servers: opts.servers, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const jsm = await jetstreamManager(nc);
    const partitions = opts.partitions ?? 16;
    const ensure = async (name: string, extra: Record<string, unknown>) => {
      const cfg = { name, subjects: [`${name}.>`], storage: 'file', ...extra };
      try {
        await jsm.streams.info(name);
      } catch {
        await jsm.streams.add(cfg as never);
      }
    };
    try {
      await ensureEventStream(jsm, opts.stream, partitions, opts.duplicateWindowMs ?? 3_600_000);
    } catch (err) {
      await nc.close();
      throw err;
    }
    await ensure(`${opts.stream}_CP`, { max_msgs_per_subject: 1 });
    await ensure(`${opts.stream}_DLQ`, { max_msgs_per_subject: 1 });
    const log = new JetStreamEventLog(nc, jetstream(nc), jsm, opts.stream, partitions);
    // Appends by any instance wake this one's workers.
    log.sub = nc.subscribe(`${opts.stream}.>`, { callback: () => log.listeners.forEach((l) => l()) });
    return log;
  }

  async publish(event: CloudEvent): Promise<PublishReceipt> {
    const subject = `${this.stream}.${partitionToken(partitionOf(event, this.partitions))}.${event.type}`;
    const ack = await this.js.publish(subject, JSON.stringify(event), { msgID: event.id, timeout: 5000 });
    return { sequence: ack.seq, stored: !ack.duplicate };
  }

  private async get(stream: string, query: { seq: number } | { last_by_subj: string }): Promise<StoredMsg | null> {
    try {
      return await this.jsm.streams.getMessage(stream, query);
    } catch (err) {
      if ((err as { code?: string | number; api_error?: { code?: number } }).api_error?.code === 404 || /not found/i.test((err as Error).message)) return null;
      throw err;
    }
  }

  async read(from: number, limit: number): Promise<StoredEvent[]> {
    const head = await this.lastSequence();
    const out: StoredEvent[] = [];
    for (let s = Math.max(1, from); s <= head && out.length < limit; s++) {
      const m = await this.get(this.stream, { seq: s });
      if (m) out.push({ sequence: m.seq, storedAt: m.time.getTime(), event: m.json<CloudEvent>() });
    }
    return out;
  }

  async sequenceAt(time: Date): Promise<number> {
    let lo = (await this.jsm.streams.info(this.stream)).state.first_seq;
    let hi = (await this.lastSequence()) + 1;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const m = await this.get(this.stream, { seq: mid });
      if (m && m.time.getTime() < time.getTime()) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async lastSequence(): Promise<number> {
    return (await this.jsm.streams.info(this.stream)).state.last_seq;
  }

  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async saveCheckpoint(consumer: string, cp: ConsumerCheckpoint): Promise<void> {
    await this.js.publish(`${this.stream}_CP.${subjectToken(consumer)}`, JSON.stringify(cp));
  }

  async loadCheckpoint(consumer: string): Promise<ConsumerCheckpoint | undefined> {
    const m = await this.get(`${this.stream}_CP`, { last_by_subj: `${this.stream}_CP.${subjectToken(consumer)}` });
    return m ? m.json<ConsumerCheckpoint>() : undefined;
  }

  async addDeadLetter(dl: DeadLetter): Promise<void> {
    await this.js.publish(`${this.stream}_DLQ.${subjectToken(dl.id)}`, JSON.stringify(dl));
  }

  async deadLetters(subscription?: string): Promise<DeadLetter[]> {
    const info = await this.jsm.streams.info(`${this.stream}_DLQ`);
    const out: DeadLetter[] = [];
    for (let s = info.state.first_seq; s <= info.state.last_seq && info.state.messages > 0; s++) {
      const m = await this.get(`${this.stream}_DLQ`, { seq: s });
      if (!m || m.data.length === 0) continue;
      const dl = m.json<DeadLetter>();
      if (subscription === undefined || dl.subscription === subscription) out.push(dl);
    }
    return out;
  }

  async removeDeadLetter(id: string): Promise<boolean> {
    const r = await this.jsm.streams.purge(`${this.stream}_DLQ`, { filter: `${this.stream}_DLQ.${subjectToken(id)}` });
    return r.purged > 0;
  }

  async ready(): Promise<boolean> {
    if (this.nc.isClosed()) return false;
    try {
      await this.jsm.streams.info(this.stream);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.sub?.unsubscribe();
    if (this.nc.isClosed()) return;
    // drain() waits for a server that may be gone (reconnecting forever): bounded, then a plain close.
    await Promise.race([this.nc.drain().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    if (!this.nc.isClosed()) await this.nc.close().catch(() => undefined);
  }
}
