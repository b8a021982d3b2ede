/**
 * `npm run bench`: every row in one invocation, one after another, on loopback only, each bounded in time.
 * The load generator (autocannon, in this process) is separate from the gateway and upstream processes.
 *
 *   rows: direct upstream · reference (express + http-proxy-middleware) · gateway bare proxy ·
 *         gateway full chain on Redis · full chain on the memory store · full chain with N workers ·
 *         full chain on memory with OpenTelemetry export on (telemetry off is the memory row) ·
 *         fixed-rate latency (1,000 req/s) direct vs full chain · optional soak (memory growth)
 *
 * Options (env): BENCH_DURATION=seconds per row (default 8), BENCH_CONNECTIONS (50), BENCH_SOAK=1 for the
 * 3 × 60 s memory soak, BENCH_REDIS_URL (redis://127.0.0.1:6379). Results: bench/results.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { fullChainYaml, bareYaml } from './configs.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DURATION = Number(process.env.BENCH_DURATION ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const TMP = mkdtempSync(join(tmpdir(), 'hcgw-bench-'));

interface Proc {
  child: ChildProcess;
  port: number;
}

/** Starts a child that prints "ready <port>" (bench servers) or waits for /readyz (the gateway). */
async function startChild(args: string[], opts: { readyLine?: boolean; port?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Proc> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HCGW_LOG_LEVEL: 'warn', ...opts.env } });
  const errors: string[] = [];
  child.stderr!.on('data', (c: Buffer) => errors.push(String(c)));
  if (opts.readyLine) {
    const rl = createInterface({ input: child.stdout! });
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`child did not start: ${errors.join('')}`)), 20_000);
      rl.on('line', (l) => {
        const m = /^ready (\d+)/.exec(l);
        if (m) (clearTimeout(t), resolve(Number(m[1])));
      });
      child.once('exit', (c) => reject(new Error(`child exited ${c}: ${errors.join('')}`)));
    });
    return { child, port };
  }
  child.stdout!.resume();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`http://127.0.0.1:${opts.port}/readyz`);
      if (r.ok) return { child, port: opts.port! };
    } catch {
      /* not up yet */
    }
    if (child.exitCode !== null) throw new Error(`gateway exited: ${errors.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('gateway did not become ready');
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  const done = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
  if (p.child.exitCode === null) p.child.kill('SIGKILL');
}

/** Peak resident set (VmHWM) of a process and its children (cluster workers), in MB; Linux /proc. */
function peakRssMb(pid: number): number {
  const pids = [pid];
  try {
    pids.push(...readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    /* no children file */
  }
  let max = 0;
  for (const p of pids) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) max = Math.max(max, Number(m[1]) / 1024);
    } catch {
      /* exited */
    }
  }
  return Math.round(max);
}

interface Row {
  name: string;
  path: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  peakRssMb?: number;
  ratioToDirect?: number;
  ratioToReference?: number;
}

async function load(name: string, url: string, headers: Record<string, string>, extra: Partial<autocannon.Options> = {}, pid?: number): Promise<Row> {
  // A short warm-up fills keep-alive pools, JWKS caches and JIT before the measured run.
  await autocannon({ url, headers, connections: CONNECTIONS, duration: 2 });
  const r = await autocannon({ url, headers, connections: CONNECTIONS, duration: DURATION, ...extra });
  const row: Row = {
    name,
    path: new URL(url).pathname,
    reqPerSec: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    ...(pid ? { peakRssMb: peakRssMb(pid) } : {}),
  };
  process.stderr.write(`  ${name.padEnd(34)} ${row.path.padEnd(24)} ${String(row.reqPerSec).padStart(7)} req/s  p50 ${row.p50} ms  p99 ${row.p99} ms${row.non2xx ? `  non2xx ${row.non2xx}` : ''}\n`);
  return row;
}

async function gateway(yaml: string, name: string, workers = 1): Promise<Proc> {
  const file = join(TMP, `${name}.yaml`);
  writeFileSync(file, yaml);
  const port = 18000 + Math.floor(Math.random() * 2000);
  return startChild(['dist/gateway/cli/index.js', 'start', '--config', file, '--port', String(port), '--workers', String(workers)], { port });
}

async function main(): Promise<void> {
  // The measured processes run compiled JavaScript (as in production), not the TypeScript loader.
  const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('npm run build failed');
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
  const jwksFile = join(TMP, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const token = await new SignJWT({ scope: 'patient/*.rs', client_id: 'bench-client', patient: 'p1' })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench-1' })
    .setIssuer('https://bench-idp.local')
    .setAudience('hcgw-bench')
    .setSubject('bench-user')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  const auth = { authorization: `Bearer ${token}`, 'x-purpose-of-use': 'TREAT' };

  const upstream = await startChild(['bench/upstream.mjs', '0', jwksFile], { readyLine: true });
  const up = `http://127.0.0.1:${upstream.port}`;
  const reference = await startChild(['bench/reference.mjs', '0', up], { readyLine: true });
  const paths = { patient: '/fhir/Patient/p1', bundle: '/fhir/Observation?patient=p1' };
  const rows: Row[] = [];
  process.stderr.write(`bench: ${DURATION}s per row, ${CONNECTIONS} connections, ${availableParallelism()} CPUs, node ${process.version}\n`);
  try {
    for (const [kind, p] of Object.entries(paths)) {
      rows.push(await load(`direct (${kind})`, up + p, {}));
      rows.push(await load(`reference express+hpm (${kind})`, `http://127.0.0.1:${reference.port}${p}`, {}, {}, reference.child.pid));
    }
    const bare = await gateway(bareYaml(up), 'bare');
    for (const [kind, p] of Object.entries(paths)) rows.push(await load(`gateway bare proxy (${kind})`, `http://127.0.0.1:${bare.port}${p}`, {}, {}, bare.child.pid));
    await stop(bare);

    // An OTLP/HTTP collector that accepts and discards: the row measures the gateway's side of tracing.
    const collector = http.createServer((req, res) => req.resume().on('end', () => res.end('{}')));
    await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
    const otlpUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`;
    const modes: Array<[string, 'redis' | 'memory', number, string?]> = [
      ['full chain, redis', 'redis', 1],
      ['full chain, memory', 'memory', 1],
      ['full chain, memory, telemetry on (OTLP)', 'memory', 1, otlpUrl],
      [`full chain, redis, ${availableParallelism()} workers`, 'redis', availableParallelism()],
    ];
    for (const [label, store, workers, otlp] of modes) {
      const gw = await gateway(fullChainYaml({ upstream: up, jwks: `${up}/jwks`, store, redisUrl: REDIS_URL, auditFile: join(TMP, `audit-${store}-${workers}${otlp ? '-otel' : ''}.log`), otlpUrl: otlp }), `full-${store}-${workers}${otlp ? '-otel' : ''}`, workers);
      for (const [kind, p] of Object.entries(paths)) rows.push(await load(`${label} (${kind})`, `http://127.0.0.1:${gw.port}${p}`, auth, {}, gw.child.pid));
      if (store === 'redis' && workers === 1) {
        // Latency added at a fixed offered rate (not at saturation): the number a clinician feels.
        rows.push(await load('fixed 1000 req/s: direct (bundle)', up + paths.bundle, {}, { overallRate: 1000, connections: 20 }));
        rows.push(await load('fixed 1000 req/s: full chain (bundle)', `http://127.0.0.1:${gw.port}${paths.bundle}`, auth, { overallRate: 1000, connections: 20 }, gw.child.pid));
        if (process.env.BENCH_SOAK) {
          const rss: number[] = [];
          for (let i = 0; i < 3; i++) {
            await autocannon({ url: `http://127.0.0.1:${gw.port}${paths.bundle}`, headers: auth, connections: CONNECTIONS, duration: 60 });
            const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${gw.child.pid}/status`, 'utf8'));
            rss.push(m ? Math.round(Number(m[1]) / 1024) : -1);
            process.stderr.write(`  soak run ${i + 1}: RSS ${rss[i]} MB\n`);
          }
          rows.push({ name: `soak 3×60s full chain (bundle): RSS after each run ${rss.join(' / ')} MB`, path: paths.bundle, reqPerSec: 0, p50: 0, p99: 0, non2xx: 0, errors: 0, peakRssMb: peakRssMb(gw.child.pid!) });
        }
      }
      await stop(gw);
    }
    collector.close();
  } finally {
    await stop(reference);
    await stop(upstream);
  }

  for (const r of rows) {
    const base = (name: string) => rows.find((x) => x.name === name && x.path === r.path);
    const direct = base(r.name.startsWith('fixed') ? 'fixed 1000 req/s: direct (bundle)' : `direct (${r.name.includes('(bundle)') ? 'bundle' : 'patient'})`);
    const ref = base(`reference express+hpm (${r.name.includes('(bundle)') ? 'bundle' : 'patient'})`);
    if (direct?.reqPerSec) r.ratioToDirect = Number((r.reqPerSec / direct.reqPerSec).toFixed(2));
    if (ref?.reqPerSec) r.ratioToReference = Number((r.reqPerSec / ref.reqPerSec).toFixed(2));
  }
  const table = [
    '| row | req/s | p50 ms | p99 ms | peak RSS MB | × direct | × reference |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.reqPerSec} | ${r.p50} | ${r.p99} | ${r.peakRssMb ?? ''} | ${r.ratioToDirect ?? ''} | ${r.ratioToReference ?? ''} |`),
  ].join('\n');
  process.stdout.write(`\n${table}\n`);
  const fixedDirect = rows.find((r) => r.name === 'fixed 1000 req/s: direct (bundle)');
  const fixedFull = rows.find((r) => r.name === 'fixed 1000 req/s: full chain (bundle)');
  if (fixedDirect && fixedFull) process.stdout.write(`\nlatency added by the full chain at 1000 req/s: p99 +${(fixedFull.p99 - fixedDirect.p99).toFixed(2)} ms, p50 +${(fixedFull.p50 - fixedDirect.p50).toFixed(2)} ms\n`);
  // The event backbone's rows (both engines, in this process): bounded to 1,000 events and 60 s per engine.
  const { eventBenchTable } = await import('./events.ts');
  process.stdout.write(`\nevent backbone:\n${await eventBenchTable({ count: 1000, timeoutMs: 60_000 })}\n`);
  const outDir = join(ROOT, 'bench');
  if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: availableParallelism(), durationSec: DURATION, connections: CONNECTIONS, rows }, null, 2) + '\n');
}

await main();
process.exit(0);
