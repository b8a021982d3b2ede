/**
 * A/B of one bench row between two builds, in alternating rounds on one upstream, so machine noise hits
 * both sides alike: `tsx bench/ab.ts ROW KIND [--base-ref REF] [--rounds N] [--seconds S]`.
 *   ROW: bare | jwt-rate-limit | full-redis | full-memory;  KIND: patient | bundle
 *   --base-ref REF  builds git REF in a throw-away worktree as side A (default: none; only B is measured)
 *   side B is the working tree, built into dist/ here.
 *   --prof DIR      writes a V8 CPU profile of each gateway process into DIR
 * Prints CPU µs/request (user + system of the gateway process, from /proc), req/s and peak RSS per round, then the
 * medians. Loopback only; every round is bounded by --seconds (default 5) and --rounds (default 4).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bareYaml, fullChainYaml, jwtRateLimitYaml } from './configs.ts';
import { benchToken } from './token.ts';
import { ROOT, buildDist, measure, startChild, startGateway, stop } from './harness.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { 'base-ref': { type: 'string' }, rounds: { type: 'string', default: '4' }, seconds: { type: 'string', default: '5' }, prof: { type: 'string' } },
});
const [row, kind] = positionals;
const ROWS = ['bare', 'jwt-rate-limit', 'full-redis', 'full-memory'];
if (!ROWS.includes(row) || !['patient', 'bundle'].includes(kind)) {
  process.stderr.write(`usage: tsx bench/ab.ts ${ROWS.join('|')} patient|bundle [--base-ref REF] [--rounds N] [--seconds S]\n`);
  process.exit(1);
}
const rounds = Math.min(20, Math.max(1, Number(values.rounds)));
const seconds = Math.min(60, Math.max(1, Number(values.seconds)));
const TMP = mkdtempSync(join(tmpdir(), 'hcgw-ab-'));

/** REF checked out and built beside this tree, sharing its node_modules. */
function buildRef(ref: string): string {
  const dir = join(TMP, 'base');
  execFileSync('git', ['worktree', 'add', '--detach', dir, ref], { cwd: ROOT, stdio: 'ignore' });
  if (!existsSync(join(dir, 'node_modules'))) symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  buildDist(dir);
  return join(dir, 'dist');
}

buildDist();
const sides: Array<[string, string]> = [['B (working tree)', join(ROOT, 'dist')]];
if (values['base-ref']) sides.unshift([`A (${values['base-ref']})`, buildRef(values['base-ref'])]);
const { jwk, jwksFile, auth } = await benchToken(TMP);
const upstream = await startChild(['bench/upstream.mjs', '0', jwksFile], { readyLine: true });
const up = `http://127.0.0.1:${upstream.port}`;
const yaml = () =>
  row === 'bare'
    ? bareYaml(up)
    : row === 'jwt-rate-limit'
      ? jwtRateLimitYaml(up, jwk)
      : fullChainYaml({ upstream: up, jwks: `${up}/jwks`, store: row === 'full-redis' ? 'redis' : 'memory', redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379', auditFile: join(TMP, `audit-${Date.now()}.log`) });
const path = kind === 'patient' ? '/fhir/Patient/p1' : '/fhir/Observation?patient=p1';
const results = new Map<string, number[]>(sides.map(([name]) => [name, []]));
const peaks = new Map<string, number[]>(sides.map(([name]) => [name, []]));
try {
  for (let i = 0; i < rounds; i++) {
    for (const [name, dist] of i % 2 ? [...sides].reverse() : sides) {
      const gw = await startGateway(yaml(), `ab-${i}`, { tmp: TMP, distDir: dist, profileDir: values.prof });
      try {
        const r = await measure({ seconds, warmupSeconds: 2, connections: 50 }, `${name} round ${i + 1}`, `http://127.0.0.1:${gw.port}${path}`, row === 'bare' ? {} : auth, {}, gw.child.pid);
        if (r.non2xx || r.errors) throw new Error(`${name}: ${r.non2xx} non-2xx, ${r.errors} errors`);
        results.get(name)!.push(r.cpuUsPerReq ?? NaN);
        peaks.get(name)!.push(r.peakRssMb ?? NaN);
      } finally {
        await stop(gw);
      }
    }
  }
} finally {
  await stop(upstream);
  if (values['base-ref']) spawnSync('git', ['worktree', 'remove', '--force', join(TMP, 'base')], { cwd: ROOT });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [name, xs] of results) {
  const rss = peaks.get(name)!;
  process.stdout.write(`${row} ${kind} ${name}: median ${median(xs)} µs/req (rounds: ${xs.join(', ')}); peak RSS median ${median(rss)} MB (rounds: ${rss.join(', ')})\n`);
}
process.exit(0);
