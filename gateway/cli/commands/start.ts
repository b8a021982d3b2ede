import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../../config/errors.ts';
import { loadConfigFile } from '../../config/load.ts';
import { Gateway } from '../../http/server.ts';
import { runPrimary } from '../../ops/cluster.ts';
import { createLogger } from '../../ops/logger.ts';
import { reloadOnSignal, watchConfig } from '../../ops/reload.ts';
import { parseOptions, printConfigError, UsageError } from '../command.ts';
import { validateFile } from './validate.ts';
import { startLegacy } from '../../legacy/runtime.ts';

export async function run(args: string[]): Promise<number> {
  const { values } = parseOptions(args, { config: { type: 'string', short: 'c' }, sandbox: { type: 'boolean' }, port: { type: 'string' }, workers: { type: 'string', short: 'w' }, watch: { type: 'boolean' } });
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new UsageError('--port must be an integer from 0 to 65535');
  const file = resolve(values.config ?? process.env.HCGW_CONFIG ?? 'routes.yaml');
  const logger = createLogger();
  let closeSandbox: (() => Promise<void>) | undefined;
  let sandboxReceivers: { chargeCapture: { gatewayUrl?: string } } | undefined;
  const workers = cluster.isPrimary ? await workerCount(file, values.workers, logger) : 1;
  if (values.sandbox && cluster.isPrimary) {
    const { startSandbox } = await import('../../sandbox/index.ts');
    const sb = await startSandbox({ erpRequiresGatewayToken: true });
    closeSandbox = () => sb.close();
    sandboxReceivers = sb.receivers;
    logger.info('sandbox started', { ...sb.urls });
  }
  if (workers > 1) {
    // Fail fast in the primary: N workers would otherwise each refuse the same bad file.
    const code = await validateFile(file);
    if (code !== 0) {
      await closeSandbox?.();
      return code;
    }
    runPrimary({ workers, logger, onShutdown: closeSandbox });
    return -1;
  }
  let gw: Gateway;
  try {
    gw = await Gateway.create({ file, logger, port });
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      logger.error('refusing to start: invalid config', { file: err.file, errors: err.issues.length });
      await closeSandbox?.();
      return 1;
    }
    throw err;
  }
  const bound = await gw.listen();
  // The sandbox's charge-capture service calls the gateway's process API (README "Events in the sandbox").
  if (sandboxReceivers) sandboxReceivers.chargeCapture.gatewayUrl = `http://127.0.0.1:${bound.port}`;
  const legacy = await startLegacy({ config: gw.compiled.config, configDir: dirname(file), store: gw.store, audit: gw.audit, logger, publisher: gw.events });
  const watcher = values.watch ? watchConfig(gw) : undefined;
  const stop = async (signal: string) => {
    logger.info('shutting down', { signal });
    watcher?.close();
    await legacy.close();
    await gw.close();
    await closeSandbox?.();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  reloadOnSignal(gw, 'SIGHUP');
  return -1; // keep running
}

/**
 * Default: one worker per CPU when state is shared in Redis; one process with the memory store, whose
 * counters and idempotency keys would otherwise be silently split per worker. An explicit --workers wins.
 */
async function workerCount(file: string, flag: string | undefined, logger: ReturnType<typeof createLogger>): Promise<number> {
  if (flag !== undefined) {
    const n = Number(flag);
    if (!Number.isInteger(n) || n < 1) throw new UsageError('--workers must be a positive integer');
    return n;
  }
  try {
    const { config } = await loadConfigFile(file);
    if (config.store?.kind === 'redis') return availableParallelism();
    logger.info('memory store: running one process (use a redis store to scale out with --workers)');
  } catch {
    /* the start path reports config errors */
  }
  return 1;
}
