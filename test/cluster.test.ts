import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { deadPort, startUpstream, waitFor, writeConfig, type TestUpstream } from './helpers.ts';

/**
 * `hcgw start --workers 2`: a worker that dies is replaced, and SIGUSR2 rolls every worker (a new one
 * listens before an old one drains) without failing a request of a bounded load running through it.
 */
const BIN = fileURLToPath(new URL('../bin/hcgw.js', import.meta.url));

function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    http
      .get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      })
      .on('error', () => resolve(0));
  });
}

/** The cluster primary's live worker pids (Linux /proc). */
function workerPids(primary: number): number[] {
  try {
    return readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('cluster workers', () => {
  let up: TestUpstream;
  let child: ReturnType<typeof spawn>;
  let url: string;
  let out = '';
  const count = (message: string) => out.split('\n').filter((l) => l.includes(`"message":"${message}"`)).length;

  before(async () => {
    up = await startUpstream();
    const port = await deadPort();
    const file = writeConfig(`version: 1
upstreams:
  up: { url: ${up.url} }
routes:
  - { id: r, layer: system, match: { path: /r }, target: { upstream: up, path: /x } }
`);
    child = spawn(process.execPath, [BIN, 'start', '--config', file, '--port', String(port), '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (out += d));
    url = `http://127.0.0.1:${port}/r`;
    await waitFor(() => count('gateway listening') >= 2 || child.exitCode !== null, 30_000, 'two workers to listen');
    assert.equal(child.exitCode, null, out);
  });
  after(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await up.close();
  });

  test('a worker that dies is replaced', async () => {
    const [victim] = workerPids(child.pid!);
    assert.ok(victim, 'a worker pid');
    process.kill(victim, 'SIGKILL');
    await waitFor(() => count('worker died') >= 1 && count('gateway listening') >= 3, 20_000, 'a replacement worker');
    assert.equal(workerPids(child.pid!).length, 2);
    assert.ok(!workerPids(child.pid!).includes(victim));
    assert.equal((await fetch(url)).status, 200);
  });

  test('SIGUSR2 rolls every worker with no failed request under a bounded load', async () => {
    const before = workerPids(child.pid!);
    const listening = count('gateway listening');
    let stop = false;
    const outcomes: number[] = [];
    // A fresh connection per request (agent: false): a keep-alive socket closed while idle can race a
    // request the client is already sending, a property of HTTP/1.1 itself (clients retry those), not of
    // the roll. What the roll must guarantee is that every new connection finds a listening worker.
    const client = async () => {
      for (let i = 0; i < 400 && !stop; i++) outcomes.push(await getStatus(url));
    };
    const load = Promise.all([client(), client(), client()]);
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGUSR2');
    await waitFor(() => count('workers restarted') >= 1, 30_000, 'the rolling restart');
    stop = true;
    await load;
    const after = workerPids(child.pid!);
    assert.equal(after.length, 2);
    assert.ok(after.every((p) => !before.includes(p)), 'both workers replaced');
    assert.ok(count('gateway listening') >= listening + 2);
    assert.ok(outcomes.length > 20, `load ran (${outcomes.length} requests)`);
    assert.deepEqual(outcomes.filter((s) => s !== 200), [], 'every request answered 200');
  });
});
