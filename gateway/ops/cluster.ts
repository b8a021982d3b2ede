import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'winston';

export interface PrimaryOptions {
  workers: number;
  logger: Logger;
  /** Runs after every worker has exited (stop the sandbox, …). */
  onShutdown?: () => Promise<void>;
  /** Bound on how long a worker may drain on shutdown before it is killed. */
  drainMs?: number;
}

/**
 * The cluster primary does no request work: it forks N workers that share the listening port, restarts a
 * worker that dies (with backoff, giving up on a crash loop), forwards SIGHUP (config reload) to every
 * worker, rolls the workers one at a time on SIGUSR2 (a new one must be listening before an old one is
 * told to drain), and on SIGTERM/SIGINT lets every worker drain before exiting.
 */
export function runPrimary(opts: PrimaryOptions): void {
  const { logger } = opts;
  const drainMs = opts.drainMs ?? 15_000;
  let stopping = false;
  const recentCrashes: number[] = [];
  /** Workers we are stopping on purpose (rolling restart): their exit is not a crash. */
  const retiring = new WeakSet<Worker>();

  const fork = (): Worker => {
    const w = cluster.fork();
    w.on('exit', (code, signal) => {
      if (stopping || retiring.has(w)) return;
      const now = Date.now();
      recentCrashes.push(now);
      while (recentCrashes.length && now - recentCrashes[0] > 60_000) recentCrashes.shift();
      logger.error('worker died', { pid: w.process.pid, code, signal });
      if (recentCrashes.length > opts.workers * 5) {
        logger.error('workers crash-looping: giving up');
        void shutdown('crash-loop', 1);
        return;
      }
      setTimeout(() => stopping || fork(), Math.min(100 * recentCrashes.length, 2000));
    });
    return w;
  };

  const listening = (w: Worker) => new Promise<void>((resolve) => w.once('listening', () => resolve()));
  const exited = (w: Worker) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve())));

  /** Graceful stop of one worker: SIGTERM makes it drain; a kill after drainMs bounds the wait. */
  const stopWorker = async (w: Worker) => {
    const timer = setTimeout(() => w.process.kill('SIGKILL'), drainMs + 1000);
    w.process.kill('SIGTERM');
    await exited(w);
    clearTimeout(timer);
  };

  const shutdown = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info('primary shutting down', { signal });
    await Promise.all(Object.values(cluster.workers ?? {}).map((w) => w && stopWorker(w)));
    await opts.onShutdown?.();
    process.exit(code);
  };

  const roll = async () => {
    for (const old of Object.values(cluster.workers ?? {})) {
      if (!old || stopping) continue;
      const fresh = fork();
      await listening(fresh);
      retiring.add(old);
      await stopWorker(old);
    }
    logger.info('workers restarted');
  };

  for (let i = 0; i < opts.workers; i++) fork();
  logger.info('cluster primary started', { workers: opts.workers, pid: process.pid });
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });
  process.on('SIGUSR2', () => void roll());
}
