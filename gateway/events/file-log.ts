import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { CloudEvent, ConsumerCheckpoint, DeadLetter, EventLog, PublishReceipt, StoredEvent } from './types.ts';

/** One line of events.log: sequence, stored-at (epoch ms), envelope. */
interface LogLine {
  s: number;
  t: number;
  e: CloudEvent;
}

interface Pending {
  event: CloudEvent;
  resolve(r: PublishReceipt): void;
  reject(err: Error): void;
}

const CONSUMER_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** fsync through a handle opened for that purpose: a rename is durable only once its directory is synced. */
async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a whole file so that a crash leaves either the old or the new content (tmp, fsync, rename). */
async function writeAtomic(dir: string, name: string, content: string): Promise<void> {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, name));
  await syncDir(dir);
}

/**
 * The embedded engine: an append-only JSON-lines file with group commit (every publish waiting at that
 * moment is written in one write and one fdatasync, and resolves only after it), an in-memory index of
 * offsets, and checkpoint files written atomically. On open, a torn last line (crash mid-write) is cut off:
 * its publisher never got a receipt, so nothing acknowledged is lost. One process owns a directory.
 */
export class FileEventLog implements EventLog {
  readonly kind = 'embedded';
  private fh!: FileHandle;
  private size = 0;
  /** offsets[i], lengths[i], times[i] belong to sequence i + 1. */
  private readonly offsets: number[] = [];
  private readonly lengths: number[] = [];
  private readonly times: number[] = [];
  private readonly ids = new Map<string, number>();
  private readonly listeners = new Set<() => void>();
  private queue: Pending[] = [];
  private writing = false;
  private closed = false;
  private readonly dead = new Map<string, DeadLetter>();
  private deadFh!: FileHandle;
  private deadWrites: Promise<void> = Promise.resolve();

  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<FileEventLog> {
    const log = new FileEventLog(dir);
    await mkdir(join(dir, 'checkpoints'), { recursive: true });
    await log.recover();
    return log;
  }

  private async recover(): Promise<void> {
    const file = join(this.dir, 'events.log');
    const buf = await readFile(file).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? Buffer.alloc(0) : Promise.reject(err)));
    let pos = 0;
    while (pos < buf.length) {
      const nl = buf.indexOf(0x0a, pos);
      if (nl < 0) break; // torn tail: never acknowledged
      let line: LogLine;
      try {
        line = JSON.parse(buf.toString('utf8', pos, nl)) as LogLine;
      } catch {
        break;
      }
      if (line.s !== this.offsets.length + 1) break;
      this.offsets.push(pos);
      this.lengths.push(nl - pos);
      this.times.push(line.t);
      this.ids.set(line.e.id, line.s);
      pos = nl + 1;
    }
    this.fh = await open(file, 'a+');
    if (pos < buf.length) await this.fh.truncate(pos);
    this.size = pos;
    await this.recoverDeadLetters();
  }

  private async recoverDeadLetters(): Promise<void> {
    const file = join(this.dir, 'dead-letters.log');
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      try {
        const op = JSON.parse(raw) as { add?: DeadLetter; remove?: string };
        if (op.add) this.dead.set(op.add.id, op.add);
        if (op.remove) this.dead.delete(op.remove);
      } catch {
        // a torn last line: that write was never acknowledged
      }
    }
    this.deadFh = await open(file, 'a');
  }

  publish(event: CloudEvent): Promise<PublishReceipt> {
    if (this.closed) return Promise.reject(new Error('event log is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      if (!this.writing) void this.flush();
    });
  }

  /** Group commit: one write + one fdatasync for everything queued meanwhile. */
  private async flush(): Promise<void> {
    this.writing = true;
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      const now = Date.now();
      const receipts: PublishReceipt[] = [];
      const chunks: Buffer[] = [];
      const added: Array<{ id: string; offset: number; length: number }> = [];
      const inBatch = new Map<string, number>();
      let next = this.offsets.length + 1;
      let offset = this.size;
      for (const p of batch) {
        const known = this.ids.get(p.event.id) ?? inBatch.get(p.event.id);
        if (known !== undefined) {
          receipts.push({ sequence: known, stored: false });
          continue;
        }
        const line = Buffer.from(`${JSON.stringify({ s: next, t: now, e: p.event } satisfies LogLine)}\n`);
        chunks.push(line);
        added.push({ id: p.event.id, offset, length: line.length - 1 });
        inBatch.set(p.event.id, next);
        receipts.push({ sequence: next, stored: true });
        offset += line.length;
        next++;
      }
      try {
        if (chunks.length) {
          const data = Buffer.concat(chunks);
          await this.fh.write(data, 0, data.length, this.size);
          await this.fh.datasync();
        }
      } catch (err) {
        // The tail may hold part of this batch: cut it so the file stays a clean prefix.
        await this.fh.truncate(this.size).catch(() => undefined);
        for (const p of batch) p.reject(err as Error);
        continue;
      }
      for (const a of added) {
        this.offsets.push(a.offset);
        this.lengths.push(a.length);
        this.times.push(now);
        this.ids.set(a.id, this.offsets.length);
      }
      this.size = offset;
      batch.forEach((p, i) => p.resolve(receipts[i]));
      if (chunks.length) for (const l of this.listeners) l();
    }
    this.writing = false;
  }

  async read(from: number, limit: number): Promise<StoredEvent[]> {
    const start = Math.max(1, Math.floor(from));
    const end = Math.min(this.offsets.length, start + limit - 1);
    if (end < start) return [];
    const first = this.offsets[start - 1];
    const last = this.offsets[end - 1] + this.lengths[end - 1];
    const buf = Buffer.alloc(last - first);
    await this.fh.read(buf, 0, buf.length, first);
    const out: StoredEvent[] = [];
    for (let s = start; s <= end; s++) {
      const o = this.offsets[s - 1] - first;
      const line = JSON.parse(buf.toString('utf8', o, o + this.lengths[s - 1])) as LogLine;
      out.push({ sequence: line.s, storedAt: line.t, event: line.e });
    }
    return out;
  }

  async sequenceAt(time: Date): Promise<number> {
    const t = time.getTime();
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.times[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }

  async lastSequence(): Promise<number> {
    return this.offsets.length;
  }

  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async saveCheckpoint(consumer: string, cp: ConsumerCheckpoint): Promise<void> {
    if (!CONSUMER_NAME.test(consumer)) throw new Error('invalid consumer name');
    await writeAtomic(join(this.dir, 'checkpoints'), `${consumer}.json`, JSON.stringify(cp));
  }

  async loadCheckpoint(consumer: string): Promise<ConsumerCheckpoint | undefined> {
    if (!CONSUMER_NAME.test(consumer)) throw new Error('invalid consumer name');
    const text = await readFile(join(this.dir, 'checkpoints', `${consumer}.json`), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as ConsumerCheckpoint);
  }

  private appendDeadOp(op: { add?: DeadLetter; remove?: string }): Promise<void> {
    const write = this.deadWrites.then(async () => {
      await this.deadFh.write(`${JSON.stringify(op)}\n`);
      await this.deadFh.datasync();
    });
    this.deadWrites = write.catch(() => undefined);
    return write;
  }

  async addDeadLetter(dl: DeadLetter): Promise<void> {
    await this.appendDeadOp({ add: dl });
    this.dead.set(dl.id, dl);
  }

  async deadLetters(subscription?: string): Promise<DeadLetter[]> {
    return [...this.dead.values()].filter((d) => subscription === undefined || d.subscription === subscription);
  }

  async removeDeadLetter(id: string): Promise<boolean> {
    if (!this.dead.has(id)) return false;
    await this.appendDeadOp({ remove: id });
    this.dead.delete(id);
    return true;
  }

  async ready(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing || this.queue.length) await new Promise((r) => setTimeout(r, 5));
    await this.deadWrites;
    await this.fh.close();
    await this.deadFh.close();
  }
}

