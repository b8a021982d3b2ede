/**
 * What the benchmark scripts share (`npm run bench`, bench/ab.ts): starting and stopping the measured
 * processes, reading their CPU time and peak RSS from /proc, and one measured autocannon run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface LoadOptions {
  seconds: number;
  warmupSeconds: number;
  connections: number;
}

/** `npm run build` in `cwd` (this tree, or another checkout): the measured processes run compiled JavaScript. */
export function buildDist(cwd = ROOT): void {
  const r = spawnSync('npm', ['run', '-s', 'build'], { cwd, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm run build failed in ${cwd}`);
}

export interface Proc {
  child: ChildProcess;
  port: number;
}

/** Starts a child that prints "ready <port>" (bench servers) or waits for /readyz (the gateway). */
export async function startChild(args: string[], opts: { readyLine?: boolean; port?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Proc> {
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

export async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null) return;
  const done = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
  if (p.child.exitCode === null) p.child.kill('SIGKILL');
}

/** A process and its children (cluster workers); Linux /proc. */
function processTree(pid: number): number[] {
  try {
    return [pid, ...readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)];
  } catch {
    return [pid];
  }
}

/** CPU time (user + system) of a process and its children so far, in µs (clock ticks of 10 ms). */
export function cpuMicros(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ').pop()!.split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited */
    }
  }
  return ticks * 10_000;
}

/** Peak resident set (VmHWM) of a process and its children (cluster workers), in MB; Linux /proc. */
export function peakRssMb(pid: number): number {
  let max = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) max = Math.max(max, Number(m[1]) / 1024);
    } catch {
      /* exited */
    }
  }
  return Math.round(max);
}

export interface Row {
  name: string;
  path: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  peakRssMb?: number;
  /** CPU time of the measured process per request, µs. */
  cpuUsPerReq?: number;
  ratioToDirect?: number;
  ratioToReference?: number;
}

export async function measure(o: LoadOptions, name: string, url: string, headers: Record<string, string>, extra: Partial<autocannon.Options> = {}, pid?: number): Promise<Row> {
  // A short warm-up fills keep-alive pools, JWKS caches and JIT before the measured run.
  await autocannon({ url, headers, connections: o.connections, duration: o.warmupSeconds, ...extra });
  const cpuBefore = pid ? cpuMicros(pid) : 0;
  const r = await autocannon({ url, headers, connections: o.connections, duration: o.seconds, ...extra });
  const cpu = pid ? cpuMicros(pid) - cpuBefore : 0;
  const row: Row = {
    name,
    path: new URL(url).pathname,
    reqPerSec: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    ...(pid ? { peakRssMb: peakRssMb(pid), cpuUsPerReq: r.requests.total ? Math.round(cpu / r.requests.total) : undefined } : {}),
  };
  process.stderr.write(`  ${name.padEnd(44)} ${String(row.reqPerSec).padStart(6)} req/s  p50 ${row.p50} ms  p99 ${row.p99} ms${row.cpuUsPerReq ? `  ${row.cpuUsPerReq} µs/req` : ''}${row.non2xx ? `  non2xx ${row.non2xx}` : ''}\n`);
  return row;
}

/**
 * A gateway process on `yaml`, from compiled JavaScript (`dist/` unless `distDir` names another build, as
 * bench/ab.ts does to compare two), optionally writing a V8 CPU profile into `profileDir`.
 */
export async function startGateway(yaml: string, name: string, o: { tmp: string; workers?: number; distDir?: string; profileDir?: string }): Promise<Proc> {
  const file = join(o.tmp, `${name}.yaml`);
  writeFileSync(file, yaml);
  const port = 18000 + Math.floor(Math.random() * 2000);
  const prof = o.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(o.profileDir, name)}`] : [];
  return startChild([...prof, join(o.distDir ?? 'dist', 'gateway/cli/index.js'), 'start', '--config', file, '--port', String(port), '--workers', String(o.workers ?? 1)], { port });
}
