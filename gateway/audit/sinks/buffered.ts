import type { Logger } from 'winston';
import TransportStream from 'winston-transport';
import type { Metrics } from '../../ops/metrics.ts';

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

/** A failure worth retrying; `kind` labels hcgw_audit_sink_failures_total. */
export class SinkError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
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
    this.enqueue(String(info.message));
    callback();
  }

  private enqueue(line: string): void {
    if (this.buffer.length >= this.opts.maxBufferRecords) {
      this.drop(1, 'overflow');
      return;
    }
    this.buffer.push(line);
    this.pump();
  }

  private drop(n: number, reason: string): void {
    if (!this.losing) this.deps.logger.error('audit records are being dropped', { sink: this.sinkName, reason, buffered: this.buffer.length });
    this.losing = true;
    this.deps.metrics.auditDropped.inc({ sink: this.sinkName, reason }, n);
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
        this.buffer.splice(0, n);
        this.backoffMs = 0;
        this.losing = false;
        this.deps.metrics.auditRecords.inc({ sink: this.sinkName }, n);
      } catch (err) {
        const kind = (err as { kind?: string }).kind ?? 'error';
        this.deps.metrics.auditSinkFailures.inc({ sink: this.sinkName, kind });
        if (err instanceof PermanentSinkError) {
          this.deps.logger.error('audit sink rejected records', { sink: this.sinkName, kind, records: batch.length });
          this.buffer.splice(0, batch.length);
          this.drop(batch.length, 'rejected');
          continue;
        }
        if (this.backoffMs === 0) this.deps.logger.warn('audit sink failing, retrying', { sink: this.sinkName, kind });
        this.backoffMs = Math.min(this.opts.retryMaxMs, this.backoffMs ? this.backoffMs * 2 : this.opts.retryInitialMs);
        const left = this.closingUntil === undefined ? Infinity : this.closingUntil - Date.now();
        if (left <= 0) return;
        await this.sleep(Math.min(this.backoffMs, left));
      }
    }
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
    this.backoffMs = Math.min(this.backoffMs, this.opts.retryInitialMs);
    this.wake?.();
    const deadline = new Promise<void>((r) => setTimeout(r, this.opts.closeTimeoutMs + 50).unref());
    for (;;) {
      if (!this.pumping && this.buffer.length && Date.now() < this.closingUntil) this.pump();
      if (!this.pumping) break;
      await Promise.race([this.pumping, deadline]);
      if (Date.now() >= this.closingUntil) break;
    }
    if (this.buffer.length) this.drop(this.buffer.splice(0).length, 'shutdown');
    await this.release().catch((err: unknown) => this.deps.logger.warn('audit sink close failed', { sink: this.sinkName, error: err }));
  }
}
