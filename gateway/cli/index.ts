import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { runPrimary } from '../ops/cluster.ts';
import { resolve } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { stringify as stringifyYaml } from 'yaml';
import { compileConfig } from '../config/compile.ts';
import { ConfigError, formatIssue } from '../config/errors.ts';
import { loadConfigFile } from '../config/load.ts';
import { createLogger } from '../ops/logger.ts';
import { createMetrics } from '../ops/metrics.ts';
import { reloadOnSignal, watchConfig } from '../ops/reload.ts';
import { Gateway } from '../http/server.ts';
import { createMemoryStore } from '../store/memory.ts';

const USAGE = `usage: hcgw <command> [options]

  start [--config routes.yaml] [--sandbox] [--port N] [--workers N] [--watch]
                                                         run the gateway (--sandbox also starts the demo upstreams and dev IdP;
                                                         --workers: cluster size, default one per CPU with a redis store;
                                                         --watch: reload when the config file changes; SIGHUP always reloads)
  validate [file]                                        check a routes.yaml; prints every error, exit 1 if any
  token [--client ID] [--sub S] [--scope "a b"] [--patient ID] [--fhir-user REF] [--aud A] [--ttl SEC] [--idp URL]
                                                         mint a dev token from the running sandbox IdP
  openapi [file] [--out f] [--server URL]                write the OpenAPI 3.1 document of the routes (JSON; YAML when f ends
                                                         in .yaml/.yml); the config is checked first, exit 1 if invalid
  audit verify [--rotated] [--partial] <file...>         check audit hash chains: files oldest first (rotated ones, then the
                                                         live one; --rotated adds each live file's rotated siblings);
                                                         prints OK <n> records, or the first broken line and exit 1
`;

function printConfigError(err: ConfigError): void {
  process.stderr.write(`${err.file}: ${err.issues.length} error${err.issues.length === 1 ? '' : 's'}\n`);
  for (const i of err.issues) process.stderr.write(`  ${formatIssue(err.file, i)}\n`);
}

async function validate(file: string, opts: { quiet?: boolean } = {}): Promise<number> {
  try {
    const loaded = await loadConfigFile(file);
    const store = createMemoryStore();
    const compiled = await compileConfig(loaded, { logger: createLogger({ silent: true }), metrics: createMetrics(), store });
    for (const w of compiled.warnings) process.stderr.write(`${file}: warning: ${w.path}: ${w.message}\n`);
    const layers = compiled.routes.reduce<Record<string, number>>((acc, r) => ((acc[r.layer] = (acc[r.layer] ?? 0) + 1), acc), {});
    if (!opts.quiet) process.stdout.write(
      `${file}: OK — ${compiled.routes.length} routes (${Object.entries(layers).map(([l, n]) => `${n} ${l}`).join(', ')}), ` +
        `${loaded.config.identity.issuers.length} issuers, ${Object.keys(loaded.config.upstreams).length} upstreams, version ${loaded.hash}\n`,
    );
    await compiled.close();
    await store.close();
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      return 1;
    }
    throw err;
  }
}

async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, sandbox: { type: 'boolean' }, port: { type: 'string' }, workers: { type: 'string', short: 'w' }, watch: { type: 'boolean' } } });
  const file = resolve(values.config ?? process.env.HCGW_CONFIG ?? 'routes.yaml');
  const logger = createLogger();
  let closeSandbox: (() => Promise<void>) | undefined;
  const workers = cluster.isPrimary ? await workerCount(file, values.workers, logger) : 1;
  if (values.sandbox && cluster.isPrimary) {
    const { startSandbox } = await import('../sandbox/index.ts');
    const sb = await startSandbox();
    closeSandbox = () => sb.close();
    logger.info('sandbox started', { ...sb.urls });
  }
  if (workers > 1) {
    // Fail fast in the primary: N workers would otherwise each refuse the same bad file.
    const code = await validate(file);
    if (code !== 0) {
      await closeSandbox?.();
      return code;
    }
    runPrimary({ workers, logger, onShutdown: closeSandbox });
    return -1;
  }
  let gw: Gateway;
  try {
    gw = await Gateway.create({ file, logger, port: values.port ? Number(values.port) : undefined });
  } catch (err) {
    if (err instanceof ConfigError) {
      printConfigError(err);
      logger.error('refusing to start: invalid config', { file: err.file, errors: err.issues.length });
      await closeSandbox?.();
      return 1;
    }
    throw err;
  }
  await gw.listen();
  const watcher = values.watch ? watchConfig(gw) : undefined;
  const stop = async (signal: string) => {
    logger.info('shutting down', { signal });
    watcher?.close();
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

async function token(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      client: { type: 'string' },
      sub: { type: 'string' },
      scope: { type: 'string', multiple: true },
      patient: { type: 'string' },
      'fhir-user': { type: 'string' },
      aud: { type: 'string' },
      ttl: { type: 'string' },
      idp: { type: 'string' },
    },
  });
  const idp = values.idp ?? process.env.HCGW_DEV_IDP ?? 'http://127.0.0.1:9100';
  const body = {
    clientId: values.client ?? 'dev-client',
    subject: values.sub ?? values.client ?? 'dev-user',
    scopes: (values.scope ?? []).flatMap((s) => s.split(/\s+/)).filter(Boolean),
    patient: values.patient,
    fhirUser: values['fhir-user'],
    audience: values.aud,
    expiresIn: values.ttl ? Number(values.ttl) : undefined,
  };
  let res: Response;
  try {
    res = await fetch(`${idp}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch {
    process.stderr.write(`cannot reach the dev IdP at ${idp}: is the sandbox running (npm start)?\n`);
    return 1;
  }
  if (!res.ok) {
    process.stderr.write(`dev IdP answered ${res.status}\n`);
    return 1;
  }
  const json = (await res.json()) as { access_token?: string; token?: string };
  process.stdout.write(`${json.access_token ?? json.token}\n`);
  return 0;
}

async function openapi(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { out: { type: 'string', short: 'o' }, server: { type: 'string' } } });
  const file = positionals[0] ?? 'routes.yaml';
  // A document for partners must describe a config that would start: check it exactly as validate does.
  if ((await validate(file, { quiet: true })) !== 0) return 1;
  const { config, hash } = await loadConfigFile(file);
  const { buildOpenApi } = await import('./openapi.ts');
  const doc = buildOpenApi(config, file, { version: hash, serverUrl: values.server });
  const text = values.out && /\.ya?ml$/.test(values.out) ? stringifyYaml(doc) : `${JSON.stringify(doc, null, 2)}\n`;
  if (values.out) await writeFile(values.out, text);
  else process.stdout.write(text);
  return 0;
}

async function audit(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { rotated: { type: 'boolean' }, partial: { type: 'boolean' } } });
  const [sub, ...files] = positionals;
  if (sub !== 'verify' || !files.length) {
    process.stderr.write(USAGE);
    return 2;
  }
  const { verifyAuditFiles, describeNote } = await import('../audit/verify.ts');
  const { auditFilesInOrder } = await import('../audit/sinks/file.ts');
  const ordered = values.rotated ? (await Promise.all(files.map((f) => auditFilesInOrder(resolve(f))))).flat() : files;
  const r = await verifyAuditFiles(ordered, { partial: values.partial });
  for (const note of r.notes ?? []) process.stdout.write(`NOTE ${describeNote(note)}\n`);
  if (r.ok) {
    process.stdout.write(`OK ${r.records} records\n`);
    return 0;
  }
  process.stdout.write(`BROKEN ${r.file}:${r.line}: ${r.reason} (${r.records} records verified before it)\n`);
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    return await run(cmd, rest);
  } catch (err) {
    // Bad flags are the user's mistake: say so plainly, without a stack trace.
    const code = (err as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS') && !(err instanceof UsageError)) throw err;
    process.stderr.write(`hcgw: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
}

class UsageError extends Error {}

async function run(cmd: string | undefined, rest: string[]): Promise<number> {
  switch (cmd) {
    case 'start':
      return start(rest);
    case 'validate':
      return validate(rest[0] ?? 'routes.yaml');
    case 'token':
      return token(rest);
    case 'audit':
      return audit(rest);
    case 'openapi':
      return openapi(rest);
    default:
      process.stderr.write(USAGE);
      return cmd === undefined || cmd === 'help' || cmd === '--help' ? 0 : 2;
  }
}

const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
