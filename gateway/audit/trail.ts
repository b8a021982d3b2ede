import { hostname } from 'node:os';
import winston from 'winston';
import { GENESIS, seal } from './chain.ts';
import type { AuditConfig } from './schema.ts';
import { createSink, FileSink, type BufferedSink, type SinkFactoryDeps } from './sinks/index.ts';

/** The sinks take the sealed line as the message; winston must not re-serialise it. */
const passthrough = winston.format((info) => info);

/**
 * One hash chain and its sinks. `append()` is all the request path pays (an array push); a timer seals
 * the pending records in order and hands the lines to a dedicated winston logger whose transports are
 * the sinks. `close()` seals what is left and ends the logger, which waits for every sink to deliver.
 */
export class AuditTrail {
  readonly source: string;
  private pending: object[] = [];
  private timer?: NodeJS.Timeout;
  private head = GENESIS;
  private started?: Promise<winston.Logger>;
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

  append(record: object): void {
    if (this.closing) {
      this.deps.metrics.auditDropped.inc({ sink: 'trail', reason: 'closed' });
      return;
    }
    this.pending.push(record);
    this.timer ??= setTimeout(() => void this.flush(), this.config.flushIntervalMs);
  }

  /** Seals everything appended so far and hands it to the sinks (delivery itself stays asynchronous). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
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
    const logger = await this.start();
    for (const record of this.pending.splice(0)) {
      const { line, hash } = seal(record, this.head);
      this.head = hash;
      logger.info(line);
    }
  }

  private start() {
    this.started ??= (async () => {
      await this.after;
      const sinks = this.config.sinks.map((c) => createSink(c, this.deps));
      this.sinks = sinks;
      const file = sinks.find((s): s is FileSink => s instanceof FileSink);
      if (file) {
        // Continue the chain that is already on disk, so a restart or a reload does not break it.
        const last = await file.open().catch((err: unknown) => {
          this.deps.metrics.auditSinkFailures.inc({ sink: file.sinkName, kind: 'open' });
          this.deps.logger.error('audit file cannot be opened; the chain restarts from genesis', { sink: file.sinkName, error: err });
          return undefined;
        });
        if (last) this.head = last;
      }
      const logger = winston.createLogger({ level: 'info', format: passthrough(), transports: sinks, exitOnError: false });
      logger.on('error', (err: unknown) => this.deps.logger.error('audit transport error', { error: err }));
      return logger;
    })();
    return this.started;
  }

  /** Seals the rest, then waits until every sink delivered it or gave up (each within its closeTimeoutMs). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flush();
      if (!this.started) return;
      const logger = await this.started;
      await new Promise<void>((resolve) => {
        logger.once('finish', resolve);
        logger.end();
      });
    })();
    return this.closing;
  }
}
