import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { deadPort, startGateway, startUpstream, waitFor, writeConfig, type TestUpstream } from './helpers.ts';

/**
 * Draining without resets: no request that reached a gateway socket is reset by a shutdown (the SIGTERM
 * handler's Gateway.close()) or by a rolling restart, under keep-alive load. A request is either answered
 * (with Connection: close once draining) or never accepted (ECONNREFUSED: the client knows it did not run).
 */

const BIN = fileURLToPath(new URL('../bin/hcgw.js', import.meta.url));
const RESET = new Set(['ECONNRESET', 'EPIPE', 'socket hang up']);

interface Tally {
  ok: number;
  closeHeaders: number;
  refused: number;
  resets: string[];
  other: string[];
}
const tally = (): Tally => ({ ok: 0, closeHeaders: 0, refused: 0, resets: [], other: [] });

function request(url: string, agent: http.Agent, method: string, t: Tally): Promise<void> {
  return new Promise((resolve) => {
    const fail = (e: NodeJS.ErrnoException) => {
      const code = e.code ?? e.message;
      if (code === 'ECONNREFUSED') t.refused++;
      else if (RESET.has(code) || RESET.has(e.message)) t.resets.push(`${method} ${code}`);
      else t.other.push(`${method} ${code}`);
      resolve();
    };
    const req = http.request(url, { agent, method, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode === 200) t.ok++;
        else t.other.push(`${method} status ${res.statusCode}`);
        if (res.headers.connection === 'close') t.closeHeaders++;
        resolve();
      });
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(method === 'POST' ? '{"a":1}' : undefined);
  });
}

/** `loops` keep-alive clients, each bounded in count, until `stop()` says so. */
function load(url: string, loops: number, t: Tally, stop: () => boolean): { done: Promise<void> } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: loops });
  const done = Promise.all(
    Array.from({ length: loops }, async (_, i) => {
      for (let n = 0; n < 5000 && !stop(); n++) await request(url, agent, (n + i) % 3 === 0 ? 'POST' : 'GET', t);
    }),
  ).then(() => agent.destroy());
  return { done };
}

describe('drain without resets', () => {
  let up: TestUpstream;
  before(async () => {
    up = await startUpstream((_req, res) => {
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end('{"ok":true}');
      }, 2).unref();
    });
  });
  after(() => up.close());
  const routes = () => `version: 1
upstreams:
  up: { url: ${up.url} }
routes:
  - { id: r, layer: system, match: { methods: [GET, POST], path: /r }, target: { upstream: up, path: /x } }
`;

  test('20 shutdowns under keep-alive load: 0 resets; every request answered or refused', async () => {
    const total = tally();
    for (let cycle = 0; cycle < 20; cycle++) {
      const gw = await startGateway(routes());
      const t = tally();
      let closed = false;
      const l = load(`${gw.url}/r`, 6, t, () => closed && t.refused > 0);
      await waitFor(() => t.ok >= 20, 10_000, 'load to run');
      await gw.gw.close(3000);
      closed = true;
      // Clients keep trying until the closed port refuses them.
      const deadline = Date.now() + 5000;
      while (t.refused === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await l.done;
      total.ok += t.ok;
      total.closeHeaders += t.closeHeaders;
      total.refused += t.refused;
      total.resets.push(...t.resets);
      total.other.push(...t.other);
    }
    assert.deepEqual(total.resets, [], 'no request reset');
    assert.deepEqual(total.other, []);
    assert.ok(total.ok > 400, `load ran (${total.ok} answered)`);
    assert.ok(total.closeHeaders >= 20, `draining answers carried Connection: close (${total.closeHeaders})`);
  });

  test('5 rolling restarts (SIGUSR2, 2 workers) under keep-alive load: every request answered 200', { timeout: 400_000 }, async () => {
    const port = await deadPort();
    const child = spawn(process.execPath, [BIN, 'start', '--config', writeConfig(routes()), '--port', String(port), '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (out += d));
    const count = (message: string) => out.split('\n').filter((l) => l.includes(`"message":"${message}"`)).length;
    try {
      await waitFor(() => count('gateway listening') >= 2 || child.exitCode !== null, 60_000, 'two workers to listen');
      const t = tally();
      let stop = false;
      const l = load(`http://127.0.0.1:${port}/r`, 6, t, () => stop);
      for (let roll = 1; roll <= 5; roll++) {
        await waitFor(() => t.ok >= roll * 30, 20_000, 'load to run');
        child.kill('SIGUSR2');
        await waitFor(() => count('workers restarted') >= roll, 60_000, `rolling restart ${roll}`);
      }
      stop = true;
      await l.done;
      assert.deepEqual(t.resets, [], 'no request reset');
      assert.deepEqual(t.other, []);
      assert.equal(t.refused, 0, 'the primary kept accepting');
      assert.ok(t.closeHeaders >= 5, `draining workers answered with Connection: close (${t.closeHeaders})`);
    } finally {
      const exited = new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
  });
});
