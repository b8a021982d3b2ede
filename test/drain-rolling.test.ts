import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { deadPort, startUpstream, waitFor, writeConfig, type TestUpstream } from './helpers.ts';
import { load, tally } from './drain-load.ts';

/** Rolling restarts (SIGUSR2) of `hcgw start --workers 2` under keep-alive load: no request reset. */

const BIN = fileURLToPath(new URL('../bin/hcgw.js', import.meta.url));

describe('rolling restarts without resets', () => {
  let up: TestUpstream;
  before(async () => {
    up = await startUpstream((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
  });
  after(() => up.close());
  const routes = () => `version: 1
upstreams:
  up: { url: ${up.url} }
routes:
  - { id: r, layer: system, match: { methods: [GET, POST], path: /r }, target: { upstream: up, path: /x } }
`;

  test('5 rolling restarts (SIGUSR2, 2 workers) under keep-alive load: every request answered 200', async () => {
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
