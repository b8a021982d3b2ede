import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deadPort, readAuditRecords, requireSharedRedis, startGateway, startUpstream, uniquePrefix, waitFor, writeConfig, type TestUpstream } from './helpers.ts';

/**
 * Graceful shutdown of `hcgw start` under load: SIGTERM stops accepting, lets every accepted request
 * finish (bounded), flushes the audit trail and closes the store, and no request is lost — each one
 * either got its complete response or was refused before it was sent (ECONNREFUSED, safe to retry).
 */

const BIN = fileURLToPath(new URL('../bin/hcgw.js', import.meta.url));
const UPSTREAM_DELAY_MS = 400;

type Outcome = { status: number; body: string } | { error: string };

function get(port: number, agent: http.Agent | false): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/slow', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: `response ${e.code ?? e.message}` }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}

/** `hcgw start` as an operator runs it; resolves once `workers` processes listen. */
async function startCli(file: string, port: number, workers: number) {
  const child = spawn(process.execPath, [BIN, 'start', '--config', file, '--port', String(port), '--workers', String(workers)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  child.stderr.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const count = (message: string) => out.split('\n').filter((l) => l.includes(`"message":"${message}"`)).length;
  await waitFor(() => count('gateway listening') >= workers || child.exitCode !== null, 30_000, 'the gateway to listen');
  assert.equal(child.exitCode, null, out);
  return { child, exited, count, output: () => out };
}

describe('graceful shutdown of hcgw start under load', () => {
  let up: TestUpstream;
  let redisUrl: string;
  before(async () => {
    redisUrl = await requireSharedRedis();
    up = await startUpstream((_req, res) => {
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ok: true, pad: 'x'.repeat(2000) }));
      }, UPSTREAM_DELAY_MS).unref();
    });
  });
  after(() => up.close());

  for (const workers of [1, 2]) {
    test(`SIGTERM mid-load (${workers} worker${workers > 1 ? 's' : ''}): nothing lost, new connections refused, audit flushed, store closed`, async () => {
      const file = writeConfig(`
version: 1
store: { kind: redis, url: "${redisUrl}", prefix: "${uniquePrefix('shutdown')}" }
audit:
  hashKey: shutdown-test-audit-hash-key-0123456789abcdef
  flushIntervalMs: 50
  sinks: [ { kind: file, path: ./audit.log } ]
upstreams:
  slow: { url: "${up.url}" }
routes:
  - { id: slow, layer: system, match: { path: /slow }, target: { upstream: slow, path: /x }, policies: [ { audit: {} } ] }
`);
      const port = await deadPort();
      const gw = await startCli(file, port, workers);
      const upstreamBefore = up.requests.length;
      const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 3 });
      try {
        // 12 requests on their own connections, 12 queued on 3 keep-alive connections (reused after each answer).
        const accepted = [...Array.from({ length: 12 }, () => get(port, false)), ...Array.from({ length: 12 }, () => get(port, keepAlive))];
        await waitFor(() => up.requests.length - upstreamBefore >= 12, 10_000, 'requests to be in flight');
        const signalled = Date.now();
        gw.child.kill('SIGTERM');
        await waitFor(() => gw.count('shutting down') >= workers, 5000, 'the workers to begin draining');
        await new Promise((r) => setTimeout(r, 100));
        const late = await Promise.all(Array.from({ length: 4 }, () => get(port, false)));
        const outcomes = await Promise.all(accepted);
        const code = await gw.exited;
        const drainMs = Date.now() - signalled;

        const ok = outcomes.filter((o): o is { status: number; body: string } => 'status' in o);
        const lost = outcomes.filter((o) => 'error' in o && o.error !== 'ECONNREFUSED');
        assert.deepEqual(lost, [], 'a request was cut or reset instead of answered or refused');
        for (const o of ok) assert.equal(JSON.parse(o.body).pad.length, 2000, 'complete body');
        assert.ok(ok.length >= 12, `the requests in flight at SIGTERM were answered (${ok.length})`);
        assert.deepEqual(late, late.map(() => ({ error: 'ECONNREFUSED' })), 'new connections are refused once draining');
        assert.equal(up.requests.length - upstreamBefore, ok.length, 'every request the upstream served was delivered');
        assert.equal(code, 0);
        assert.ok(drainMs < 10_000, `drained in ${drainMs} ms`);

        const dir = dirname(file);
        const records = readdirSync(dir).filter((f) => f.startsWith('audit.log')).flatMap((f) => readAuditRecords(join(dir, f)));
        assert.equal(records.length, ok.length, 'one audit record per answered request, flushed before exit');
        assert.equal(gw.count('redis store closed'), workers, 'each process closed its store');
      } finally {
        keepAlive.destroy();
        if (gw.child.exitCode === null) gw.child.kill('SIGKILL');
        await gw.exited;
      }
    });
  }
});

describe('graceful shutdown: the drain is bounded', () => {
  test('a request that never ends does not hold the shutdown past drainMs; the store is closed after', async () => {
    const hung = await startUpstream(() => undefined);
    const redisUrl = await requireSharedRedis();
    const gw = await startGateway(`
version: 1
store: { kind: redis, url: "${redisUrl}", prefix: "${uniquePrefix('drain')}" }
upstreams:
  hung: { url: "${hung.url}", timeoutMs: 60000 }
routes:
  - { id: hung, layer: system, match: { path: /hung }, target: { upstream: hung, path: /x } }
`);
    try {
      const pending = fetch(`${gw.url}/hung`).then(
        (r) => `status ${r.status}`,
        () => 'cut',
      );
      await waitFor(() => hung.requests.length === 1, 5000, 'the request to reach the upstream');
      assert.equal(await gw.gw.store.ping(), true);
      const started = Date.now();
      await gw.gw.close(300);
      assert.ok(Date.now() - started < 3000, `close took ${Date.now() - started} ms`);
      assert.equal(await pending, 'cut', 'the hung request was cut, not answered with a made-up status');
      assert.equal(await gw.gw.store.ping(), false, 'the store is closed');
    } finally {
      await gw.close();
      await hung.close();
    }
  });
});
