import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigIssue } from '../config/errors.ts';
import { configVersion } from '../config/load.ts';
import type { Logger } from 'winston';
import type { CompiledGateway } from '../config/compile.ts';

/**
 * The triggers of a config reload: SIGHUP, a file watch (`hcgw start --watch`) and the admin API. All
 * of them end in `Gateway.reload()`, which compiles off to the side, swaps atomically and keeps the
 * running config when the new one is invalid.
 */
export interface Reloadable {
  readonly file: string;
  readonly logger: Logger;
  readonly compiled: CompiledGateway;
  reload(): Promise<CompiledGateway>;
}

export type ReloadResult =
  | { ok: true; version: string; previous: string; routes: number }
  | { ok: false; /** The version still serving. */ version: string; issues: ConfigIssue[] };

/** One reload, reported as data (for the admin API); the gateway has already logged the outcome. */
export async function reloadConfig(gw: Reloadable, trigger: string): Promise<ReloadResult> {
  const previous = gw.compiled.hash;
  gw.logger.info('config reload requested', { trigger, file: gw.file });
  try {
    const next = await gw.reload();
    return { ok: true, version: next.hash, previous, routes: next.routes.length };
  } catch (err) {
    const issues = err instanceof ConfigError ? err.issues : [{ path: '', message: `reload failed: ${String((err as Error)?.message ?? err).split('\n')[0]}` }];
    return { ok: false, version: gw.compiled.hash, issues };
  }
}

/** SIGHUP → reload, the Unix convention for "re-read your configuration". Returns the unsubscribe. */
export function reloadOnSignal(gw: Reloadable, signal: NodeJS.Signals = 'SIGHUP'): () => void {
  const onSignal = () => void reloadConfig(gw, signal);
  process.on(signal, onSignal);
  return () => process.off(signal, onSignal);
}

export interface ConfigWatcher {
  close(): void;
}

/**
 * Reloads when the config file changes. The directory is watched, not the file: editors save by
 * renaming a new file over the old one, and Kubernetes swaps a ConfigMap's `..data` symlink, and a watch
 * on the old inode sees neither. Bursts of events are debounced; content that did not change (a touch,
 * another file in the directory) reloads nothing, since the version is a digest of the bytes.
 */
export function watchConfig(gw: Reloadable, opts: { debounceMs?: number } = {}): ConfigWatcher {
  const file = resolve(gw.file);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const check = async () => {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return; // between unlink and rename: the rename's own event follows
    }
    if (!closed && configVersion(bytes) !== gw.compiled.hash) await reloadConfig(gw, 'file-watch');
  };
  const watcher = watch(dirname(file), () => {
    clearTimeout(timer);
    timer = setTimeout(() => void check(), opts.debounceMs ?? 250);
  });
  watcher.on('error', (err) => gw.logger.warn('config file watch failed', { file, error: err }));
  // The HTTP server keeps the process alive; a forgotten watcher must not.
  watcher.unref();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      watcher.close();
    },
  };
}
