import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, startUpstream, waitFor, type TestUpstream } from './helpers.ts';
import { load, tally } from './drain-load.ts';

/**
 * Draining without resets: no request that reached a gateway socket is reset by a shutdown (the SIGTERM
 * handler's Gateway.close()) or by a rolling restart, under keep-alive load. A request is either answered
 * (with Connection: close once draining) or never accepted (ECONNREFUSED: the client knows it did not run).
 */

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
});
