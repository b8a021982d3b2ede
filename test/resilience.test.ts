import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffMs, createCircuitBreaker } from '../gateway/upstream/resilience.ts';
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';
import { problem, startGateway, startUpstream, waitFor, type TestGateway, type TestUpstream } from './helpers.ts';

const OPEN_MS = 400;

describe('resilience: retries, circuit breaker and connection limits against the sandbox', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  let slow: TestUpstream;
  let inFlight = 0;
  let maxInFlight = 0;
  before(async () => {
    sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    slow = await startUpstream((_req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.setHeader('content-type', 'application/json');
        res.end('{"ok":true}');
      }, 150).unref();
    });
    gw = await startGateway(`
version: 1
upstreams:
  billing: { url: "${sb.urls.billing}", timeoutMs: 300, retries: 2, retryBackoffMs: 10, retryBackoffMaxMs: 50 }
  erp: { url: "${sb.urls.erp}", timeoutMs: 2000, circuitBreaker: { failures: 3, windowMs: 10000, openMs: ${OPEN_MS} } }
  slow: { url: "${slow.url}", maxSockets: 2 }
routes:
  - { id: s-claims, layer: system, match: { methods: [GET], path: /s/claims }, target: { upstream: billing, path: /claims } }
  - { id: s-charges, layer: system, match: { methods: [POST], path: /s/charges }, target: { upstream: billing, path: /charges } }
  - id: p-claims
    layer: process
    match: { methods: [GET], path: /p/claims }
    target: { compose: [ { name: claims, upstream: billing, path: /claims } ] }
  - id: p-charge
    layer: process
    match: { methods: [POST], path: /p/charge }
    target:
      compose: [ { name: charge, upstream: billing, method: POST, path: /charges, body: { encounter: Encounter/e-p1-1, code: X1, amount: 1 } } ]
  - { id: s-items, layer: system, match: { methods: [GET], path: /s/items }, target: { upstream: erp, path: /items } }
  - id: p-items
    layer: process
    match: { methods: [GET], path: /p/items }
    target: { compose: [ { name: items, upstream: erp, path: /items } ] }
  - { id: s-slow, layer: system, match: { methods: [GET], path: /s/slow }, target: { upstream: slow, path: /x } }
`);
  });
  after(async () => {
    await gw?.close();
    await slow?.close();
    await sb?.close();
  });
  beforeEach(() => sb.reset());

  const count = (server: 'billing' | 'erp', key: string) => sb.upstreams[server].stats().requests[key] ?? 0;
  const metrics = async () => (await fetch(`${gw.url}/metrics`)).text();
  const post = (path: string, body?: unknown) =>
    fetch(gw.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? { encounter: 'Encounter/e-p1-1', code: 'X1', amount: 1 }) });

  test('system GET: a timed-out attempt is retried and the client gets the second answer', async () => {
    sb.upstreams.billing.setFault({ delayMs: 1500, count: 1, method: 'GET', path: '/claims' });
    const res = await fetch(`${gw.url}/s/claims`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { total: number }).total > 0, true);
    assert.equal(count('billing', 'GET /claims'), 2);
    assert.match(await metrics(), /hcgw_upstream_retries_total\{upstream="billing"\} [1-9]/);
  });

  test('system POST: never retried, even after a timeout (the first attempt may have charged)', async () => {
    sb.upstreams.billing.setFault({ delayMs: 1500, count: 1, method: 'POST', path: '/charges' });
    const res = await post('/s/charges');
    assert.equal(res.status, 504);
    await problem(res);
    assert.equal(count('billing', 'POST /charges'), 1);
  });

  test('composer GET: 5xx answers are retried with backoff until one succeeds', async () => {
    sb.upstreams.billing.setFault({ status: 503, count: 2, path: '/claims' });
    const res = await fetch(`${gw.url}/p/claims`);
    assert.equal(res.status, 200);
    assert.equal(count('billing', 'GET /claims'), 3);
  });

  test('composer GET: retries are bounded by `retries`', async () => {
    sb.upstreams.billing.setFault({ status: 503, path: '/claims' });
    const res = await fetch(`${gw.url}/p/claims`);
    assert.equal(res.status, 502);
    assert.equal((await problem(res)).step, 'claims');
    assert.equal(count('billing', 'GET /claims'), 3, 'one attempt plus two retries');
  });

  test('composer POST: a 5xx is not retried', async () => {
    sb.upstreams.billing.setFault({ status: 503, count: 1, path: '/charges' });
    const res = await post('/p/charge', {});
    assert.equal(res.status, 502);
    assert.equal((await problem(res)).step, 'charge');
    assert.equal(count('billing', 'POST /charges'), 1);
  });

  test('circuit breaker: opens after N failures, answers 503 without calling, then a probe closes it', async () => {
    sb.upstreams.erp.setFault({ status: 500, path: '/items' });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/s/items`);
      assert.equal(res.status, 500, 'system routes pass the upstream answer through');
      await res.arrayBuffer();
    }
    const open = await fetch(`${gw.url}/s/items`);
    assert.equal(open.status, 503);
    assert.ok(Number(open.headers.get('retry-after')) >= 1);
    const p = await problem(open);
    assert.equal(p.type, 'https://hcgw.dev/problems/unavailable');
    const viaComposer = await fetch(`${gw.url}/p/items`);
    assert.equal(viaComposer.status, 503, 'the composer shares the upstream breaker');
    assert.equal((await problem(viaComposer)).step, 'items');
    assert.equal(count('erp', 'GET /items'), 3, 'no upstream call while open');
    let text = await metrics();
    assert.match(text, /hcgw_circuit_state\{upstream="erp"\} 2/);
    assert.match(text, /hcgw_circuit_transitions_total\{upstream="erp",state="open"\} 1/);
    assert.match(text, /hcgw_upstream_errors_total\{upstream="erp",kind="circuit-open"\} 2/);

    sb.upstreams.erp.clearFaults();
    await new Promise((r) => setTimeout(r, OPEN_MS + 100));
    const probe = await fetch(`${gw.url}/s/items`);
    assert.equal(probe.status, 200);
    await probe.arrayBuffer();
    const again = await fetch(`${gw.url}/p/items`);
    assert.equal(again.status, 200);
    await again.arrayBuffer();
    text = await metrics();
    assert.match(text, /hcgw_circuit_state\{upstream="erp"\} 0/);
    assert.match(text, /hcgw_circuit_transitions_total\{upstream="erp",state="half-open"\} 1/);
    assert.match(text, /hcgw_circuit_transitions_total\{upstream="erp",state="closed"\} 1/);
  });

  test('circuit breaker: half-open admits one probe at a time, and a failed probe re-opens it', async () => {
    sb.upstreams.erp.setFault({ status: 500, path: '/items' });
    for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/s/items`)).arrayBuffer();
    await waitFor(async () => (await fetch(`${gw.url}/s/items`)).status !== 503, OPEN_MS * 5, 'the half-open probe');
    // That probe failed (the fault is still there): open again, so the next call is refused at once.
    const reopened = await fetch(`${gw.url}/s/items`);
    assert.equal(reopened.status, 503);
    await reopened.arrayBuffer();
    const calls = count('erp', 'GET /items');
    assert.equal(calls, 4, 'three failures and one probe');

    sb.upstreams.erp.clearFaults();
    sb.upstreams.erp.setFault({ delayMs: 300, count: 1, path: '/items' });
    await new Promise((r) => setTimeout(r, OPEN_MS + 100));
    const [first, second] = await Promise.all([fetch(`${gw.url}/s/items`), new Promise((r) => setTimeout(r, 50)).then(() => fetch(`${gw.url}/s/items`))]);
    assert.deepEqual([first.status, second.status], [200, 503], 'the second caller is refused while the probe is out');
    await Promise.all([first.arrayBuffer(), second.arrayBuffer()]);
    assert.equal(count('erp', 'GET /items'), calls + 1);
    const closed = await fetch(`${gw.url}/s/items`);
    assert.equal(closed.status, 200);
    await closed.arrayBuffer();
  });

  test('maxSockets bounds concurrent connections to an upstream; extra requests queue, none fail', async () => {
    maxInFlight = 0;
    const statuses = await Promise.all(Array.from({ length: 6 }, () => fetch(`${gw.url}/s/slow`).then(async (r) => (await r.arrayBuffer(), r.status))));
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200]);
    assert.equal(maxInFlight, 2);
  });
});

describe('resilience: building blocks', () => {
  test('backoff is full jitter: uniform in [0, min(cap, base·2^(n-1))]', () => {
    assert.equal(backoffMs(1, 100, 2000, () => 0), 0);
    assert.equal(backoffMs(1, 100, 2000, () => 0.999), 99);
    assert.equal(backoffMs(3, 100, 2000, () => 0.5), 200);
    assert.equal(backoffMs(10, 100, 2000, () => 0.999), 1998, 'capped');
  });

  test('breaker counts failures in a sliding window; old failures do not add up', () => {
    let now = 0;
    const b = createCircuitBreaker({ failures: 3, windowMs: 1000, openMs: 500, probeLeaseMs: 2000, now: () => now });
    b.admit();
    b.failure();
    now = 600;
    b.failure();
    now = 1200; // the first failure left the window
    b.failure();
    assert.equal(b.state, 'closed');
    b.failure();
    assert.equal(b.state, 'open');
    assert.throws(() => b.admit(), (e: { status?: number; reason?: string }) => e.status === 503 && e.reason === 'circuit-open');
    now = 1700;
    b.admit();
    assert.equal(b.state, 'half-open');
    assert.throws(() => b.admit(), 'one probe at a time');
    b.abandon(); // the probe's client left: the next caller may probe
    b.admit();
    b.success();
    assert.equal(b.state, 'closed');
  });

  test('a probe that never reports stops blocking after its lease', () => {
    let now = 0;
    const b = createCircuitBreaker({ failures: 1, windowMs: 1000, openMs: 100, probeLeaseMs: 300, now: () => now });
    b.failure();
    now = 150;
    b.admit();
    assert.throws(() => b.admit());
    now = 500;
    assert.doesNotThrow(() => b.admit());
  });
});
