import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * The breaker judges an answer by its whole body, not its status line: an upstream that sends 200 and then
 * resets, truncates or stalls is failing, and a half-open probe that meets such a body re-opens the breaker.
 */

const OPEN_MS = 300;
type Mode = 'ok' | 'reset' | 'truncate' | 'stall';

/** 200 with headers flushed, then the body the mode asks for. JSON is buffered by the gateway, the rest piped. */
function answer(mode: Mode, res: http.ServerResponse, type: string): void {
  if (mode === 'ok') {
    res.setHeader('content-type', type);
    res.end('{"ok":true}');
    return;
  }
  res.writeHead(200, { 'content-type': type, 'content-length': mode === 'truncate' ? '5000' : '20' });
  res.write('{"ok":');
  if (mode === 'reset') setTimeout(() => res.socket?.resetAndDestroy(), 20).unref();
  if (mode === 'truncate') setTimeout(() => res.socket?.end(), 20).unref();
  // 'stall' sends nothing more: the gateway's upstream timeout must fire after the headers.
}

/** What the client saw: a complete body, or the connection cut mid-body (never a whole-looking 200). */
async function get(url: string): Promise<{ status: number; complete: boolean }> {
  const res = await fetch(url);
  try {
    await res.arrayBuffer();
    return { status: res.status, complete: true };
  } catch {
    return { status: res.status, complete: false };
  }
}

describe('circuit breaker: failures after the response headers', () => {
  const modes: Record<string, Mode> = {};
  let up: TestUpstream;
  let gw: TestGateway;
  const calls = (key: string) => up.requests.filter((r) => r.url === `/${key}`).length;

  before(async () => {
    up = await startUpstream((req, res) => answer(modes[req.url!.slice(1)] ?? 'ok', res, req.url!.startsWith('/json') ? 'application/json' : 'application/octet-stream'));
    const upstreams = ['reset', 'truncate', 'stall', 'probe', 'composed', 'client', 'json']
      .map((k) => `  ${k}: { url: "${up.url}", timeoutMs: 200, circuitBreaker: { failures: 3, windowMs: 10000, openMs: ${OPEN_MS} } }`)
      .join('\n');
    const routes = ['reset', 'truncate', 'stall', 'probe', 'client', 'json']
      .map((k) => `  - { id: ${k}, layer: system, match: { methods: [GET], path: /${k} }, target: { upstream: ${k}, path: /${k} } }`)
      .join('\n');
    gw = await startGateway(`
version: 1
upstreams:
${upstreams}
routes:
${routes}
  - id: composed
    layer: process
    match: { methods: [GET], path: /composed }
    target: { compose: [ { name: c, upstream: composed, path: /composed } ] }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  for (const mode of ['reset', 'truncate', 'stall'] as const) {
    test(`streamed route: three 200s that ${mode} mid-body open the breaker`, async () => {
      modes[mode] = mode;
      for (let i = 0; i < 3; i++) {
        const r = await get(`${gw.url}/${mode}`);
        assert.equal(r.complete, false, 'the client must not receive a body that looks whole');
      }
      const refused = await fetch(`${gw.url}/${mode}`);
      assert.equal(refused.status, 503);
      assert.equal(((await refused.json()) as { reason?: string; type: string }).type, 'https://hcgw.dev/problems/unavailable');
      assert.equal(calls(mode), 3, 'no upstream call while open');
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      assert.match(metrics, new RegExp(`hcgw_circuit_state\\{upstream="${mode}"\\} 2`));
    });
  }

  test('buffered (JSON) route: mid-body resets answer 502 and open the breaker', async () => {
    modes.json = 'reset';
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(`${gw.url}/json`), { status: 502, complete: true });
    assert.equal((await fetch(`${gw.url}/json`)).status, 503);
    assert.equal(calls('json'), 3);
  });

  test('composer call: mid-body resets open the breaker too', async () => {
    modes.composed = 'reset';
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${gw.url}/composed`)).status, 502);
    assert.equal((await fetch(`${gw.url}/composed`)).status, 503);
    assert.equal(calls('composed'), 3);
  });

  test('a half-open probe that meets a mid-body reset re-opens the breaker; a whole body closes it', async () => {
    modes.probe = 'reset';
    for (let i = 0; i < 3; i++) await get(`${gw.url}/probe`);
    assert.equal((await fetch(`${gw.url}/probe`)).status, 503);
    await new Promise((r) => setTimeout(r, OPEN_MS + 50));
    const probe = await get(`${gw.url}/probe`);
    assert.deepEqual(probe, { status: 200, complete: false }, 'the probe got headers, then the reset');
    const afterProbe = await fetch(`${gw.url}/probe`);
    assert.equal(afterProbe.status, 503, 'the probe must not have closed the breaker');
    await afterProbe.arrayBuffer();
    assert.equal(calls('probe'), 4);

    modes.probe = 'ok';
    await new Promise((r) => setTimeout(r, OPEN_MS + 50));
    assert.deepEqual(await get(`${gw.url}/probe`), { status: 200, complete: true });
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(`${gw.url}/probe`), { status: 200, complete: true }, 'closed again');
  });

  test('whole 200s keep the breaker closed, and clients that leave mid-body do not count as failures', async () => {
    modes.client = 'stall';
    for (let i = 0; i < 5; i++) {
      const ac = new AbortController();
      const res = await fetch(`${gw.url}/client`, { signal: ac.signal });
      assert.equal(res.status, 200);
      ac.abort();
      await res.arrayBuffer().catch(() => undefined);
    }
    modes.client = 'ok';
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(`${gw.url}/client`), { status: 200, complete: true });
    assert.equal(calls('client'), 8, 'no call was refused');
  });
});
