import { hostname } from 'node:os';
import { GENESIS, seal } from './chain.ts';
import type { AuditConfig } from './schema.ts';
import { createSink, FileSink, type BufferedSink, type SinkFactoryDeps } from './sinks/index.ts';

/**
 * Longest a before-response record may take to reach the files; beyond it the response is withheld (503)
 * rather than held indefinitely while a full disk is retried.
 */
export const RELEASE_WAIT_MS = 2000;

interface Pending {
  record: object;
  /** Set for before-response records: told whether every file sink has the line. */
  written?: (ok: boolean) => void;
}

/**
 * One hash chain and its sinks. `append()` is all the request path pays (an array push); a timer seals
 * the pending records in order and hands each line to every sink, whose own buffers deliver it.
 * `appendWritten()` (durability: before-response) seals on the next turn and resolves once the line is
 * in every file sink. `close()` seals what is left and ends the sinks, each bounded by closeTimeoutMs.
 */
export class AuditTrail {
  readonly source: string;
  private pending: Pending[] = [];
  private timer?: NodeJS.Timeout;
  private immediate?: NodeJS.Immediate;
  private head = GENESIS;
  private started?: Promise<BufferedSink[]>;
  private sinks: BufferedSink[] = [];
  private sealing: Promise<void> = Promise.resolve();
  private closing?: Promise<void>;

  constructor(
    private readonly config: AuditConfig,
    private readonly deps: SinkFactoryDeps,
    /** Resolves when earlier trails writing the same files have closed, so their records come first. */
    private readonly after: Promise<unknown> = Promise.resolve(),
  ) {
    this.source = config.source ?? `${hostname()}:${process.pid}`;
  }

  get durability(): AuditConfig['durability'] {
    return this.config.durability ?? 'batched';
  }

  append(record: object): void {
    if (this.refuseClosed()) return;
    this.pending.push({ record });
    this.timer ??= setTimeout(() => void this.flush(), this.config.flushIntervalMs);
  }

  /**
   * Resolves true once the record's line was appended to every file sink (to the OS: a process crash no
   * longer loses it), false if it could not be. Records of one turn are sealed and written together.
   */
  appendWritten(record: object): Promise<boolean> {
    if (this.refuseClosed()) return Promise.resolve(false);
    return new Promise((written) => {
      this.pending.push({ record, written });
      this.immediate ??= setImmediate(() => void this.flush());
    });
  }

  private refuseClosed(): boolean {
    if (this.closing) this.deps.metrics.auditDropped.inc({ sink: 'trail', reason: 'closed' });
    return Boolean(this.closing);
  }

  /** Seals everything appended so far and hands it to the sinks (delivery itself stays asynchronous). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.sealing = this.sealing.then(
      () => this.sealPending(),
      () => this.sealPending(),
    );
    return this.sealing;
  }

  /** False while any sink is losing records; the `audit` policy's failMode: closed refuses requests then. */
  get healthy(): boolean {
    return this.sinks.every((s) => s.healthy);
  }

  private async sealPending(): Promise<void> {
    if (!this.pending.length) return;
    const sinks = await this.start();
    for (const { record, written } of this.pending.splice(0)) {
      const { line, hash } = seal(record, this.head);
      this.head = hash;
      if (!written) {
        for (const sink of sinks) sink.accept(line);
        continue;
      }
      const waits: Array<Promise<boolean>> = [];
      for (const sink of sinks) {
        const kept = sink.accept(line);
        if (sink instanceof FileSink) waits.push(kept ? sink.written(line) : Promise.resolve(false));
      }
      const late = setTimeout(written, RELEASE_WAIT_MS, false).unref();
      void Promise.all(waits).then((oks) => {
        clearTimeout(late);
        written(oks.every(Boolean));
      });
    }
  }

  private start(): Promise<BufferedSink[]> {
    this.started ??= (async () => {
      await this.after;
      const sinks = this.config.sinks.map((c) => createSink(c, this.deps));
      this.sinks = sinks;
      const file = sinks.find((s): s is FileSink => s instanceof FileSink);
      if (file) {
        // Continue the chain that is already on disk, so a restart or a reload does not break it. If the
        // file is unreadable now, the chain starts afresh and the file sink writes a segment entry
        // where it joins the file's own chain later.
        const last = await file.resumeHead().catch((err: unknown) => {
          this.deps.metrics.auditSinkFailures.inc({ sink: file.sinkName, kind: 'open' });
          this.deps.logger.error('audit file cannot be opened; the chain restarts as a new segment', { sink: file.sinkName, error: err });
          return undefined;
        });
        if (last) this.head = last;
      }
      return sinks;
    })();
    return this.started;
  }

  /** Seals the rest, then waits until every sink delivered it or gave up (each within its closeTimeoutMs). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flush();
      if (!this.started) return;
      const sinks = await this.started;
      await Promise.all(sinks.map((s) => new Promise<void>((resolve) => s.end(() => resolve()))));
    })();
    return this.closing;
  }
}
