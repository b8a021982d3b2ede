import type { Logger } from 'winston';
import TransportStream from 'winston-transport';
import type { Metrics } from '../../ops/metrics.ts';
import { hashOfLine, isMarkerLine, prevOfLine, seal, type ChainMarker } from '../chain.ts';

export interface SinkDeps {
  metrics: Metrics;
  /** The gateway's own logger, for sink trouble (never for records). */
  logger: Logger;
}

export interface BufferOptions {
  name: string;
  maxBufferRecords: number;
  batchSize: number;
  retryInitialMs: number;
  retryMaxMs: number;
  closeTimeoutMs: number;
}

/** A delivery failure that retrying cannot fix (e.g. the SIEM rejects the payload): the batch is dropped. */
export class PermanentSinkError extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

/** A failure worth retrying; `kind` labels hcgw_audit_sink_failures_total, `why` is what a gap entry states. */
export class SinkError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    options?: { cause?: unknown; why?: string },
  ) {
    super(message, options);
    this.why = options?.why;
  }
  readonly why?: string;
}

/** Records dropped in a row, waiting to be stated by a gap entry in front of the next record kept. */
interface PendingGap {
  count: number;
  /** `prev` of the first dropped line: where the gap entry links in. */
  prev: string;
  /** Hash of the last dropped line: what the next kept record links to. */
  resume: string;
  from: string;
  to: string;
  reason: string;
}

/**
 * A winston transport for chained audit lines. `log()` only appends to a bounded in-memory buffer, so
 * the request path never waits for I/O; one pump at a time delivers batches in order, retries with
 * exponential backoff, and on `end()` (winston's logger.end) keeps delivering until the buffer is empty
 * or `closeTimeoutMs` ran out. Overflow and give-ups are counted, never silent.
 *
 * Failures are reported through metrics and the gateway logger, never as 'error' events: a piped
 * stream that emits 'error' is unpiped by its source, which would silently detach the sink.
 */
export abstract class BufferedSink extends TransportStream {
  readonly sinkName: string;
  private readonly buffer: string[] = [];
  private pumping?: Promise<void>;
  private backoffMs = 0;
  private wake?: () => void;
  private closingUntil?: number;
  /** Records were dropped since the last successful delivery. */
  private losing = false;
  private gap?: PendingGap;
  /** The latest failure, in words a gap entry can carry ("disk full"); kept while a gap is open. */
  private failure?: string;
  /** Callers of `written()` by line hash (before-response durability); empty on the batched path. */
  private readonly waiters = new Map<string, (ok: boolean) => void>();

  constructor(
    protected readonly opts: BufferOptions,
    protected readonly deps: SinkDeps,
  ) {
    super({ level: 'info' });
    this.sinkName = opts.name;
  }

  /** Writes the lines in order; returns how many of them are now delivered (at least one), or throws. */
  protected abstract deliver(lines: string[]): Promise<number>;

  /** Releases files or sockets once everything is delivered (or given up). */
  protected async release(): Promise<void> {}

  /** False while records are being lost (buffer overflowed and nothing was delivered since). */
  get healthy(): boolean {
    return !this.losing;
  }

  override log(info: { message: unknown }, callback: () => void): void {
    this.accept(String(info.message));
    callback();
  }

  /**
   * Queues one sealed line; false when the buffer is full and it was dropped. Dropped lines leave a hole
   * in the chain, so the next line kept is preceded by a sealed gap entry that bridges it.
   */
  accept(line: string): boolean {
    if (this.buffer.length >= this.opts.maxBufferRecords) {
      this.noteGap([line], 'overflow');
      return false;
    }
    if (this.gap) this.buffer.push(this.gapLine(this.gap));
    this.gap = undefined;
    this.buffer.push(line);
    this.pump();
    return true;
  }

  /** Resolves true once `line` (just accepted) is delivered, false if it was dropped instead. */
  written(line: string): Promise<boolean> {
    return new Promise((resolve) => this.waiters.set(hashOfLine(line), resolve));
  }

  private settle(lines: string[], ok: boolean): void {
    if (!this.waiters.size) return;
    for (const line of lines) {
      const h = hashOfLine(line);
      const w = this.waiters.get(h);
      if (w) {
        this.waiters.delete(h);
        w(ok);
      }
    }
  }

  private noteGap(lines: string[], reason: string): void {
    this.drop(lines, reason);
    const now = new Date().toISOString();
    this.gap ??= { count: 0, prev: prevOfLine(lines[0]) ?? '', resume: '', from: now, to: now, reason };
    this.gap.count += lines.length;
    this.gap.resume = hashOfLine(lines.at(-1)!);
    this.gap.to = now;
  }

  /** The reason is settled when the gap closes: a burst may overflow the buffer before the write fails. */
  private gapLine(g: PendingGap): string {
    const reason = g.reason === 'overflow' ? (this.failure ?? 'sink too slow') : g.reason;
    this.failure = undefined;
    const marker: ChainMarker = { chain: 'gap', count: g.count, reason, from: g.from, to: g.to, resume: g.resume };
    return seal(marker, g.prev).line;
  }

  private drop(lines: string[], reason: string): void {
    if (!this.losing) this.deps.logger.error('audit records are being dropped', { sink: this.sinkName, reason, buffered: this.buffer.length });
    this.losing = true;
    // Gap entries are not records: losing one is not counted as a lost record.
    const records = lines.filter((l) => !isMarkerLine(l)).length;
    if (records) this.deps.metrics.auditDropped.inc({ sink: this.sinkName, reason }, records);
    this.settle(lines, false);
  }

  /** Longest wait between two attempts; a sink whose attempts are cheap (a local file) may shorten it. */
  protected get retryMaxMs(): number {
    return this.opts.retryMaxMs;
  }

  private pump(): void {
    if (this.pumping || !this.buffer.length) return;
    this.pumping = this.run().finally(() => {
      this.pumping = undefined;
      if (this.buffer.length && this.closingUntil === undefined) this.pump();
    });
  }

  private async run(): Promise<void> {
    // Start on the next turn, so a burst sealed in one go leaves in one batch.
    await new Promise((r) => setImmediate(r));
    while (this.buffer.length) {
      const batch = this.buffer.slice(0, this.opts.batchSize);
      try {
        const n = Math.max(1, Math.min(batch.length, await this.deliver(batch)));
        this.settle(this.buffer.splice(0, n), true);
        this.backoffMs = 0;
        this.losing = false;
        if (!this.gap) this.failure = undefined;
        this.deps.metrics.auditRecords.inc({ sink: this.sinkName }, n);
      } catch (err) {
        const kind = (err as { kind?: string }).kind ?? 'error';
        this.deps.metrics.auditSinkFailures.inc({ sink: this.sinkName, kind });
        this.failure = (err as { why?: string }).why ?? `${kind} failed`;
        if (err instanceof PermanentSinkError) {
          this.deps.logger.error('audit sink rejected records', { sink: this.sinkName, kind, records: batch.length });
          this.buffer.splice(0, batch.length);
          this.bridgeRejected(batch);
          continue;
        }
        if (this.backoffMs === 0) this.deps.logger.warn('audit sink failing, retrying', { sink: this.sinkName, kind });
        this.backoffMs = Math.min(this.retryMaxMs, this.backoffMs ? this.backoffMs * 2 : this.opts.retryInitialMs);
        const left = this.closingUntil === undefined ? Infinity : this.closingUntil - Date.now();
        if (left <= 0) return;
        await this.sleep(Math.min(this.backoffMs, left));
      }
    }
  }

  /**
   * A rejected batch is replaced, at the head of the queue, by a gap entry standing for it. A batch of
   * nothing but gap entries is not bridged again, so a sink that rejects everything cannot loop.
   */
  private bridgeRejected(batch: string[]): void {
    this.drop(batch, 'rejected');
    if (batch.every(isMarkerLine)) return;
    const now = new Date().toISOString();
    const gap: PendingGap = { count: batch.length, prev: prevOfLine(batch[0]) ?? '', resume: hashOfLine(batch.at(-1)!), from: now, to: now, reason: 'rejected by the sink' };
    this.buffer.unshift(this.gapLine(gap));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    }).finally(() => (this.wake = undefined));
  }

  /** Called by the stream machinery on end(): deliver what is left within closeTimeoutMs, then release. */
  override _final(callback: (err?: Error | null) => void): void {
    void this.drain().then(
      () => callback(),
      () => callback(),
    );
  }

  private async drain(): Promise<void> {
    this.closingUntil = Date.now() + this.opts.closeTimeoutMs;
    // Records dropped since the last one kept: state the gap at the end of what this writer leaves.
    if (this.gap) this.buffer.push(this.gapLine(this.gap));
    this.gap = undefined;
    this.backoffMs = Math.min(this.backoffMs, this.opts.retryInitialMs);
    this.wake?.();
    const deadline = new Promise<void>((r) => setTimeout(r, this.opts.closeTimeoutMs + 50).unref());
    for (;;) {
      if (!this.pumping && this.buffer.length && Date.now() < this.closingUntil) this.pump();
      if (!this.pumping) break;
      await Promise.race([this.pumping, deadline]);
      if (Date.now() >= this.closingUntil) break;
    }
    if (this.buffer.length) this.drop(this.buffer.splice(0), 'shutdown');
    await this.release().catch((err: unknown) => this.deps.logger.warn('audit sink close failed', { sink: this.sinkName, error: err }));
  }
}
