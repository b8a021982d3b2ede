import cluster from 'node:cluster';
import type { Writable } from 'node:stream';
import { resolve } from 'node:path';
import type { AuditSinkConfig } from '../schema.ts';
import type { BufferedSink, SinkDeps } from './buffered.ts';
import { FileSink } from './file.ts';
import { HttpSink } from './http.ts';
import { StreamSink } from './stdout.ts';

export { BufferedSink, type SinkDeps } from './buffered.ts';
export { FileSink, auditFilesInOrder } from './file.ts';

export interface SinkFactoryDeps extends SinkDeps {
  /** Directory of the config file: relative file paths resolve against it. */
  configDir: string;
  /** Where `stdout` sinks write (tests pass a stream). */
  stdout?: Writable;
}

/**
 * Resolved path of a file sink: two configs naming the same file share one chain. A chain has one
 * writer, so each cluster worker (`start --workers`) writes its own file, suffixed `.w<worker id>`.
 */
export function sinkPath(c: AuditSinkConfig, configDir: string): string | undefined {
  if (c.kind !== 'file') return undefined;
  const path = resolve(configDir, c.path);
  return cluster.isWorker && cluster.worker ? `${path}.w${cluster.worker.id}` : path;
}

/** The spill follows its live file's naming: one per cluster worker. */
function spillPathOf(c: AuditSinkConfig, configDir: string): string | undefined {
  if (c.kind !== 'file' || !c.spillPath) return undefined;
  return sinkPath({ ...c, path: c.spillPath }, configDir);
}

export function createSink(c: AuditSinkConfig, deps: SinkFactoryDeps): BufferedSink {
  const opts = {
    name: c.name ?? c.kind,
    maxBufferRecords: c.maxBufferRecords,
    batchSize: c.batchSize,
    retryInitialMs: c.retryInitialMs,
    retryMaxMs: c.retryMaxMs,
    closeTimeoutMs: c.closeTimeoutMs,
  };
  switch (c.kind) {
    case 'file':
      return new FileSink(sinkPath(c, deps.configDir)!, { maxBytes: c.maxBytes, spillPath: spillPathOf(c, deps.configDir), spillMaxBytes: c.spillMaxBytes }, opts, deps);
    case 'stdout':
      return new StreamSink(deps.stdout ?? process.stdout, opts, deps);
    case 'http':
      return new HttpSink({ ...opts, url: c.url, headers: c.headers, timeoutMs: c.timeoutMs }, deps);
  }
}
