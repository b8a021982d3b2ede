import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { readAuditRecords, spawnGateway, startGateway, startUpstream, tempDir, waitFor, writeConfig, type TestUpstream } from './helpers.ts';

/**
 * `audit.durability: before-response`: the record is in the audit file before the client holds a complete
 * response, so a crash (SIGKILL) right after a response never loses its record; when the record cannot be
 * written the response is withheld. `batched` (the default) is the contrast that proves the tests can fail.
 */

const HASH_KEY = 'k'.repeat(32);

function config(up: string, auditFile: string, durability: string, flushIntervalMs: number): string {
  return `
version: 1
upstreams: { u: { url: "${up}" } }
audit:
  hashKey: "${HASH_KEY}"
  durability: ${durability}
  flushIntervalMs: ${flushIntervalMs}
  sinks: [ { kind: file, path: "${auditFile}", retryInitialMs: 20 } ]
routes:
  - { id: read, layer: system, match: { methods: [GET], path: /read }, target: { upstream: u, path: /x }, policies: [ { audit: {} } ] }
  - { id: write, layer: system, match: { methods: [POST], path: /write }, target: { upstream: u, path: /x }, policies: [ { audit: {} } ] }
  - { id: missing, layer: system, match: { methods: [GET], path: /missing }, target: { upstream: u, path: /404 }, policies: [ { audit: {} } ] }
`;
}

const recordCount = (file: string) => readAuditRecords(file).filter((r) => r.chain === undefined).length;

/** One keep-alive GET; resolves when the body is complete. */
function get(url: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

describe('audit durability', () => {
  let up: TestUpstream;
  before(async () => {
    up = await startUpstream((req, res) => {
      res.statusCode = req.url === '/404' ? 404 : 200;
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
  });
  after(() => up.close());

  for (const durability of ['before-response', 'batched'] as const) {
    test(`${durability}: is the record on disk the moment the response is complete?`, async () => {
      const file = join(tempDir('hcgw-dur-'), 'audit.log');
      const gw = await startGateway(config(up.url, file, durability, 3000));
      try {
        const seen: number[] = [];
        for (const [method, path] of [['GET', '/read'], ['POST', '/write'], ['GET', '/missing'], ['GET', '/read']]) {
          const res = await fetch(gw.url + path, { method, body: method === 'POST' ? '{"a":1}' : undefined, headers: { 'content-type': 'application/json' } });
          await res.arrayBuffer();
          seen.push(existsSync(file) ? recordCount(file) : 0);
        }
        if (durability === 'before-response') {
          assert.deepEqual(seen, [1, 2, 3, 4], 'each record was written before its response ended');
          const recs = readAuditRecords(file);
          assert.deepEqual(
            recs.map((r) => JSON.stringify(r).includes('"status":404')),
            [false, false, true, false],
            'the record carries the status the client got',
          );
        } else assert.deepEqual(seen, [0, 0, 0, 0], 'batched records wait for the flush interval');
      } finally {
        await gw.close();
      }
      assert.equal(recordCount(file), 4, 'all four records at shutdown');
    });
  }

  for (const durability of ['before-response', 'batched'] as const) {
    test(`${durability}: SIGKILL right after responses — records of answered requests that survive`, async () => {
      const dir = tempDir('hcgw-dur-kill-');
      const file = join(dir, 'audit.log');
      const gw = await spawnGateway(writeConfig(config(up.url, file, durability, 500)));
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      let answered = 0;
      const deadline = Date.now() + 2000;
      try {
        // Four bounded loops for at most 2 s, then a SIGKILL with no time for a flush.
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            for (let i = 0; i < 2000 && Date.now() < deadline; i++) if ((await get(`${gw.url}/read`, agent)) === 200) answered++;
          }),
        );
        process.kill(gw.pid, 'SIGKILL');
      } finally {
        agent.destroy();
        await gw.close();
      }
      const kept = existsSync(file) ? recordCount(file) : 0;
      assert.ok(answered > 10, `load ran (${answered} answered)`);
      if (durability === 'before-response') assert.ok(kept >= answered, `${answered} answered, ${kept} records`);
      else assert.ok(kept < answered, `batched loses the last flush interval (${answered} answered, ${kept} records)`);
    });
  }

  test('before-response: a record that cannot be written withholds the response (503), and recovery is immediate', async (t) => {
    const disk = tempDir('hcgw-dur-tmpfs-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', disk], { stdio: 'ignore' });
    } catch {
      t.skip('mounting a tmpfs is not permitted here');
      return;
    }
    const file = join(disk, 'audit.log');
    const gw = await startGateway(config(up.url, file, 'before-response', 100));
    try {
      assert.equal((await fetch(`${gw.url}/read`)).status, 200);
      const filler = join(disk, 'filler');
      try {
        for (let i = 0; i < 100; i++) writeFileSync(filler, Buffer.alloc(4096, 1), { flag: 'a' });
      } catch {
        // ENOSPC: full
      }
      let withheld: Response | undefined;
      await waitFor(async () => {
        withheld = await fetch(`${gw.url}/read`);
        return withheld.status !== 200 || (await withheld.arrayBuffer(), false);
      }, 20_000, 'a withheld response');
      assert.equal(withheld!.status, 503);
      const body = (await withheld!.json()) as { type: string };
      assert.equal(body.type, 'https://hcgw.dev/problems/unavailable');
      assert.doesNotMatch(JSON.stringify(body), /ok/);
      rmSync(filler);
      await waitFor(async () => (await fetch(`${gw.url}/read`)).status === 200, 5000, 'service after space returns');
    } finally {
      await gw.close();
      execFileSync('umount', ['-l', disk]);
    }
  });
});
