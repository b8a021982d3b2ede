/**
 * `npm run bench`: every row in one invocation, one after another, on loopback only, each bounded in time.
 * The load generator (autocannon, in this process) is separate from the gateway and upstream processes.
 *
 *   rows: direct upstream · reference (express + http-proxy-middleware) · fast-gateway (restana) ·
 *         gateway bare proxy · jwt (static RS256) + rate-limit on memory (Express Gateway's two-policy chain) ·
 *         gateway full chain on Redis · full chain on the memory store · full chain with N workers ·
 *         full chain on memory with OpenTelemetry export on (telemetry off is the memory row) ·
 *         fixed offered load (half the reference's saturation rate) direct vs full chain · optional soak
 *   Every row that measures a process reports its CPU time per request (µs/req, user + system, read from
 *   /proc for the process and its cluster workers) and its peak RSS.
 *
 * Options (env): BENCH_SECONDS=seconds per row (default 8; BENCH_DURATION is the older name),
 * BENCH_ROWS=comma list of row groups (direct, reference, fast-gateway, bare, jwt-rate-limit, full-redis,
 * fixed, soak, full-memory, full-otel, full-workers, events; default all but soak), BENCH_CONNECTIONS (50),
 * BENCH_SOAK=1 for the 3 × 60 s memory soaks (bare proxy, full chain), BENCH_CPU_PROF=1 to write a V8 CPU profile of each gateway
 * process into bench/profiles/, BENCH_REDIS_URL (redis://127.0.0.1:6379). Results: bench/results.json.
 */
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { fullChainYaml, bareYaml, jwtRateLimitYaml } from './configs.ts';
import { benchToken } from './token.ts';
import { ROOT, buildDist, measure, peakRssMb, startChild, startGateway, stop, type Proc, type Row } from './harness.ts';
const DURATION = Number(process.env.BENCH_SECONDS ?? process.env.BENCH_DURATION ?? 8);
const WARMUP = Math.min(2, DURATION);
const PROFILE_DIR = process.env.BENCH_CPU_PROF ? join(dirname(fileURLToPath(import.meta.url)), 'profiles') : undefined;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const TMP = mkdtempSync(join(tmpdir(), 'hcgw-bench-'));
const LOAD = { seconds: DURATION, warmupSeconds: WARMUP, connections: CONNECTIONS };
const load = (...args: Parameters<typeof measure> extends [unknown, ...infer R] ? R : never) => measure(LOAD, ...args);
const gateway = (yaml: string, name: string, workers = 1) => startGateway(yaml, name, { tmp: TMP, workers, profileDir: PROFILE_DIR });

/** Shared by the row groups: the upstream, the reference, the token, the paths and the rows so far. */
interface Ctx {
  up: string;
  jwksFile: string;
  jwk: Record<string, unknown>;
  auth: Record<string, string>;
  paths: Record<'patient' | 'bundle', string>;
  rows: Row[];
  otlpUrl: string;
}

const fullChain = (c: Ctx, store: 'redis' | 'memory', tag: string, otlpUrl?: string) =>
  fullChainYaml({ upstream: c.up, jwks: `${c.up}/jwks`, store, redisUrl: REDIS_URL, auditFile: join(TMP, `audit-${tag}.log`), otlpUrl });

/** Both paths through one gateway config, then the gateway is stopped. */
async function gatewayRows(c: Ctx, label: string, yaml: string, tag: string, headers: Record<string, string>, workers = 1, more?: (gw: Proc) => Promise<void>): Promise<void> {
  const gw = await gateway(yaml, tag, workers);
  try {
    for (const [kind, p] of Object.entries(c.paths)) c.rows.push(await load(`${label} (${kind})`, `http://127.0.0.1:${gw.port}${p}`, headers, {}, gw.child.pid));
    await more?.(gw);
  } finally {
    await stop(gw);
  }
}

/** A plain proxy in its own process (reference, fast-gateway): both paths, then it is stopped. */
async function baselineRows(c: Ctx, label: string, script: string): Promise<void> {
  const p = await startChild([script, '0', c.up], { readyLine: true });
  try {
    for (const [kind, path] of Object.entries(c.paths)) c.rows.push(await load(`${label} (${kind})`, `http://127.0.0.1:${p.port}${path}`, {}, {}, p.child.pid));
  } finally {
    await stop(p);
  }
}

/**
 * Latency added at a fixed offered rate (not at saturation): the number a clinician feels. The rate is half
 * the reference's saturation rate on the same path when that row ran, else 1000 req/s.
 */
async function fixedRateRows(c: Ctx, gw: Proc): Promise<void> {
  for (const [kind, p] of Object.entries(c.paths)) {
    const ref = c.rows.find((r) => r.name === `reference express+hpm (${kind})`)?.reqPerSec;
    const rate = ref ? Math.max(50, Math.round(ref / 2)) : 1000;
    const opts = { overallRate: rate, connections: 20 };
    c.rows.push(await load(`fixed ${rate} req/s: direct (${kind})`, c.up + p, {}, opts));
    c.rows.push(await load(`fixed ${rate} req/s: full chain (${kind})`, `http://127.0.0.1:${gw.port}${p}`, c.auth, opts, gw.child.pid));
  }
}

/** RSS of a process now (VmRSS), MB. */
function rssNowMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : -1;
}

/** Idle time after a soak before its steady RSS is read: V8's memory reducer shrinks the heap ~30 s after load stops. */
const SETTLE_SECONDS = 45;

/**
 * 3 × 60 s of load on the Bundle (the larger body), RSS read right after each run (under load), then the
 * steady RSS: read after SETTLE_SECONDS without load, when garbage is collected and the heap has shrunk,
 * so what remains is what the process keeps (a leak shows here, a load peak does not).
 */
async function soakRows(c: Ctx, gw: Proc, label: string, headers: Record<string, string>): Promise<void> {
  const rss: number[] = [];
  for (let i = 0; i < 3; i++) {
    await autocannon({ url: `http://127.0.0.1:${gw.port}${c.paths.bundle}`, headers, connections: CONNECTIONS, duration: 60 });
    rss.push(rssNowMb(gw.child.pid!));
    process.stderr.write(`  soak ${label} run ${i + 1}: RSS ${rss[i]} MB\n`);
  }
  await new Promise((r) => setTimeout(r, SETTLE_SECONDS * 1000));
  const steady = rssNowMb(gw.child.pid!);
  process.stderr.write(`  soak ${label}: steady RSS ${steady} MB after ${SETTLE_SECONDS} s idle\n`);
  c.rows.push({ name: `soak 3×60s ${label} (bundle): RSS after each run ${rss.join(' / ')} MB, steady ${steady} MB (${SETTLE_SECONDS} s idle)`, path: c.paths.bundle, reqPerSec: 0, p50: 0, p99: 0, non2xx: 0, errors: 0, peakRssMb: peakRssMb(gw.child.pid!) });
}

/**
 * The row groups, in run order; `BENCH_ROWS=reference,bare,...` selects some (default: all but soak). Each
 * group is self-contained, so adding one is adding an entry here.
 */
const GROUPS: Array<[string, (c: Ctx) => Promise<void>]> = [
  ['direct', async (c) => {
    for (const [kind, p] of Object.entries(c.paths)) c.rows.push(await load(`direct (${kind})`, c.up + p, {}));
  }],
  ['reference', (c) => baselineRows(c, 'reference express+hpm', 'bench/reference.mjs')],
  ['fast-gateway', (c) => baselineRows(c, 'fast-gateway 3.4 (restana)', 'bench/fast-gateway.mjs')],
  ['bare', (c) => gatewayRows(c, 'gateway bare proxy', bareYaml(c.up), 'bare', {}, 1, async (gw) => {
    if (selected('soak')) await soakRows(c, gw, 'bare proxy', {});
  })],
  ['jwt-rate-limit', (c) => gatewayRows(c, 'jwt (static RS256) + rate-limit (memory)', jwtRateLimitYaml(c.up, c.jwk), 'jwt-rl', c.auth)],
  ['full-redis', (c) => gatewayRows(c, 'full chain, redis', fullChain(c, 'redis', 'redis'), 'full-redis', c.auth, 1, async (gw) => {
    if (selected('fixed')) await fixedRateRows(c, gw);
    if (selected('soak')) await soakRows(c, gw, 'full chain', c.auth);
  })],
  ['full-memory', (c) => gatewayRows(c, 'full chain, memory', fullChain(c, 'memory', 'memory'), 'full-memory', c.auth)],
  ['full-otel', (c) => gatewayRows(c, 'full chain, memory, telemetry on (OTLP)', fullChain(c, 'memory', 'otel', c.otlpUrl), 'full-otel', c.auth)],
  ['full-workers', (c) => gatewayRows(c, `full chain, redis, ${availableParallelism()} workers`, fullChain(c, 'redis', 'workers'), 'full-workers', c.auth, availableParallelism())],
];
const ROW_NAMES = process.env.BENCH_ROWS?.split(',').map((s) => s.trim()).filter(Boolean);
/** fixed runs inside full-redis, soak inside bare and full-redis (they reuse their gateways): selecting them selects those. */
function selected(name: string): boolean {
  if (!ROW_NAMES) return name !== 'soak' || Boolean(process.env.BENCH_SOAK);
  return ROW_NAMES.includes(name) || (name === 'full-redis' && (ROW_NAMES.includes('fixed') || ROW_NAMES.includes('soak'))) || (name === 'bare' && ROW_NAMES.includes('soak'));
}

async function main(): Promise<void> {
  // The measured processes run compiled JavaScript (as in production), not the TypeScript loader.
  buildDist();
  const { jwk, jwksFile, auth } = await benchToken(TMP);

  const unknown = ROW_NAMES?.filter((n) => !GROUPS.some(([g]) => g === n) && n !== 'fixed' && n !== 'soak' && n !== 'events');
  if (unknown?.length) throw new Error(`BENCH_ROWS: unknown row group(s) ${unknown.join(', ')}; known: ${GROUPS.map(([g]) => g).join(', ')}, fixed, soak, events`);
  const upstream = await startChild(['bench/upstream.mjs', '0', jwksFile], { readyLine: true });
  // An OTLP/HTTP collector that accepts and discards: the row measures the gateway's side of tracing.
  const collector = http.createServer((req, res) => req.resume().on('end', () => res.end('{}')));
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  const c: Ctx = {
    up: `http://127.0.0.1:${upstream.port}`,
    jwksFile,
    jwk,
    auth,
    paths: { patient: '/fhir/Patient/p1', bundle: '/fhir/Observation?patient=p1' },
    rows: [],
    otlpUrl: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/traces`,
  };
  const rows = c.rows;
  process.stderr.write(`bench: ${DURATION}s per row, ${CONNECTIONS} connections, ${availableParallelism()} CPUs, node ${process.version}${PROFILE_DIR ? `, CPU profiles in ${PROFILE_DIR}` : ''}\n`);
  try {
    for (const [name, run] of GROUPS) if (selected(name)) await run(c);
  } finally {
    collector.close();
    await stop(upstream);
  }

  for (const r of rows) {
    const base = (name: string) => rows.find((x) => x.name === name && x.path === r.path);
    const direct = base(r.name.startsWith('fixed') ? r.name.replace('full chain', 'direct') : `direct (${r.name.includes('(bundle)') ? 'bundle' : 'patient'})`);
    const ref = base(`reference express+hpm (${r.name.includes('(bundle)') ? 'bundle' : 'patient'})`);
    if (direct?.reqPerSec) r.ratioToDirect = Number((r.reqPerSec / direct.reqPerSec).toFixed(2));
    // A fixed-rate row is compared with direct at the same rate; its req/s is the offered rate, not a capacity.
    if (ref?.reqPerSec && !r.name.startsWith('fixed')) r.ratioToReference = Number((r.reqPerSec / ref.reqPerSec).toFixed(2));
  }
  const table = [
    '| row | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB | × direct | × reference |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.name} | ${r.reqPerSec} | ${r.p50} | ${r.p99} | ${r.cpuUsPerReq ?? ''} | ${r.peakRssMb ?? ''} | ${r.ratioToDirect ?? ''} | ${r.ratioToReference ?? ''} |`),
  ].join('\n');
  process.stdout.write(`\n${table}\n`);
  for (const full of rows.filter((r) => r.name.startsWith('fixed') && r.name.includes('full chain'))) {
    const direct = rows.find((r) => r.name === full.name.replace('full chain', 'direct'));
    if (direct) process.stdout.write(`\nlatency added by the ${full.name.replace('fixed ', 'full chain at ').replace(': full chain', '')}: p99 +${(full.p99 - direct.p99).toFixed(2)} ms, p50 +${(full.p50 - direct.p50).toFixed(2)} ms`);
  }
  process.stdout.write('\n');
  // The event backbone's rows (both engines, in this process): bounded to 1,000 events and 60 s per engine.
  if (selected('events')) {
    const { eventBenchTable } = await import('./events.ts');
    process.stdout.write(`\nevent backbone:\n${await eventBenchTable({ count: 1000, timeoutMs: 60_000 })}\n`);
  }
  const outDir = join(ROOT, 'bench');
  if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'results.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: availableParallelism(), durationSec: DURATION, connections: CONNECTIONS, rows }, null, 2) + '\n');
}

await main();
process.exit(0);
