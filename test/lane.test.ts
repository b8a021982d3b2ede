import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configIssues, problem, startGateway, startUpstream, waitFor, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

const SLOW_MS = 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('lane policy: concurrency caps, bounded queues, workload isolation', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const slow = { inFlight: 0, max: 0 };

  const get = async (path: string, signal?: AbortSignal) => {
    const t0 = performance.now();
    const res = await fetch(gw.url + path, { signal: signal ?? AbortSignal.timeout(15_000) });
    const body = await res.text();
    return { status: res.status, headers: res.headers, body, ms: performance.now() - t0, at: performance.now() };
  };

  before(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/fail') return req.socket.destroy();
      if (req.url !== '/slow') return res.end('{}');
      slow.inFlight++;
      slow.max = Math.max(slow.max, slow.inFlight);
      const timer = setTimeout(() => res.end('{}'), SLOW_MS);
      res.once('close', () => {
        clearTimeout(timer);
        slow.inFlight--;
      });
    });
    const route = (id: string, target: string, lane: string, extra = '') => `
  - id: ${id}
    layer: system
    match: { path: /${id} }
    target: { upstream: up, path: /${target} }
    policies:
      - lane: ${lane}${extra}`;
    const bulk = '{ name: bulk, maxConcurrent: 2, queue: 2, queueTimeoutMs: 5000 }';
    gw = await startGateway(`
version: 1
upstreams:
  up: { url: ${up.url}, timeoutMs: 5000 }
routes:${route('bulk-a', 'slow', bulk)}${route('bulk-b', 'slow', bulk)}
${route('clinical', 'fast', '{ name: clinical, maxConcurrent: 4, queue: 20, queueTimeoutMs: 2000 }')}
${route('tight', 'slow', '{ name: tight, maxConcurrent: 1, queue: 1, queueTimeoutMs: 200 }')}
${route('single', 'slow', '{ name: single, maxConcurrent: 1 }')}
${route('waitable', 'slow', '{ name: waitable, maxConcurrent: 1, queue: 1, queueTimeoutMs: 10000 }')}
${route('broken', 'fail', '{ name: broken, maxConcurrent: 1 }')}
${route('denied', 'fast', '{ name: denied, maxConcurrent: 1 }', '\n      - ip-allow: { allow: [192.0.2.1] }')}
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  test('a lane shared by two routes caps in-flight requests, queues a few, refuses the rest with 503', async () => {
    slow.max = 0;
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => get(i % 2 ? '/bulk-a' : '/bulk-b')));
    assert.equal(slow.max, 2, 'never more than maxConcurrent at the upstream, across both routes');
    assert.equal(results.filter((r) => r.status === 200).length, 4, '2 in flight + 2 queued');
    const refused = results.filter((r) => r.status === 503);
    assert.equal(refused.length, 4);
    for (const r of refused) {
      assert.ok(r.ms < SLOW_MS, `refused at once (${r.ms}ms)`);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.equal(r.headers.get('content-type'), 'application/problem+json');
      const body = JSON.parse(r.body) as Record<string, unknown>;
      assert.equal(body.type, 'https://hcgw.dev/problems/unavailable');
      assert.equal(body.status, 503);
    }
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /hcgw_lane_rejected_total\{lane="bulk",reason="queue-full"\} 4/);
  });

  test('a request that waits longer than queueTimeoutMs gets 503 before a slot frees', async () => {
    const [held, waited, refused] = await Promise.all([get('/tight'), sleep(50).then(() => get('/tight')), sleep(100).then(() => get('/tight'))]);
    assert.equal(held.status, 200);
    assert.equal(refused.status, 503, 'queue of 1 already taken');
    assert.equal(waited.status, 503);
    assert.ok(waited.ms >= 150 && waited.ms < SLOW_MS - 100, `timed out after ${waited.ms}ms (queueTimeoutMs 200)`);
    assert.equal(waited.headers.get('retry-after'), '1');
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(metrics, /hcgw_lane_rejected_total\{lane="tight",reason="queue-timeout"\} 1/);
  });

  test('saturating the bulk lane leaves clinical latency unaffected', async (t) => {
    const clinicalRun = async () => {
      const ms: number[] = [];
      for (let i = 0; i < 20; i++) {
        const r = await get('/clinical');
        assert.equal(r.status, 200);
        ms.push(r.ms);
      }
      return ms;
    };
    await clinicalRun(); // warm-up: connections and JIT
    const baseline = median(await clinicalRun());
    slow.max = 0;
    const bulk = Promise.all(Array.from({ length: 30 }, (_, i) => get(i % 2 ? '/bulk-a' : '/bulk-b')));
    await waitFor(() => slow.inFlight === 2, 5000, 'the bulk lane to fill');
    const during = await clinicalRun();
    const clinicalDoneAt = performance.now();
    const bulkResults = await bulk;
    const loaded = median(during);
    t.diagnostic(`clinical median: ${baseline.toFixed(1)}ms unloaded, ${loaded.toFixed(1)}ms with the bulk lane saturated`);
    assert.ok(clinicalDoneAt < Math.max(...bulkResults.map((r) => r.at)), 'clinical was measured while bulk was still saturated');
    assert.equal(slow.max, 2);
    assert.equal(bulkResults.filter((r) => r.status === 503).length, 26, 'bulk overflow refused');
    assert.ok(loaded < baseline * 3 + 50, `clinical median ${loaded.toFixed(1)}ms under bulk saturation vs ${baseline.toFixed(1)}ms unloaded`);
    assert.ok(Math.max(...during) < SLOW_MS / 2, 'no clinical request waited for a bulk slot');
  });

  test('a client that disconnects gives its slot back, in flight or queued', async () => {
    const inFlight = new AbortController();
    const first = get('/single', inFlight.signal).catch(() => 'aborted');
    await waitFor(() => slow.inFlight === 1, 5000, 'the first request to reach the upstream');
    assert.equal((await get('/single')).status, 503, 'the only slot is taken');
    inFlight.abort();
    assert.equal(await first, 'aborted');
    await waitFor(() => slow.inFlight === 0, 5000, 'the aborted request to end upstream');
    assert.equal((await get('/single')).status, 200, 'the slot came back');

    const holder = get('/waitable');
    await waitFor(() => slow.inFlight === 1, 5000, 'the holder to reach the upstream');
    const queued = new AbortController();
    const leaver = get('/waitable', queued.signal).catch(() => 'aborted');
    await sleep(100);
    queued.abort();
    assert.equal(await leaver, 'aborted');
    await sleep(50);
    const next = await get('/waitable');
    assert.equal(next.status, 200, 'the queue place was freed, so the next request queued and then ran');
    assert.equal((await holder).status, 200);
  });

  test('no slot leaks when the upstream fails or a later policy denies', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await get('/broken')).status, 502);
    for (let i = 0; i < 3; i++) assert.equal((await get('/denied')).status, 403);
  });
});

describe('lane config errors', () => {
  const load = async (lanes: string[]) => {
    const file = writeConfig(`
version: 1
upstreams: { up: { url: http://127.0.0.1:9 } }
routes:${lanes
      .map(
        (lane, i) => `
  - id: r${i}
    layer: system
    match: { path: /r${i} }
    target: { upstream: up, path: /r }
    policies:
      - lane: ${lane}`,
      )
      .join('')}
`);
    return configIssues({ file });
  };

  test('the same lane on several routes with the same settings compiles; defaults fill the rest', async () => {
    assert.deepEqual(await load(['{ name: bulk, maxConcurrent: 4, queue: 10, queueTimeoutMs: 2000 }', '{ name: bulk, maxConcurrent: 4, queue: 10, queueTimeoutMs: 2000 }', '{ name: other, maxConcurrent: 1 }']), []);
  });

  test('the same lane with other settings is refused, naming the first route', async () => {
    const issues = await load(['{ name: bulk, maxConcurrent: 4 }', '{ name: bulk, maxConcurrent: 8 }']);
    assert.deepEqual(issues, ['routes[1].policies[0].lane.name: lane "bulk" is declared with other settings on route "r0"']);
  });

  test('schema: name and maxConcurrent required, bounds and unknown keys checked', async () => {
    const issues = await load(['{ maxConcurrent: 0, queue: -1, burst: 2 }']);
    for (const expected of ['lane.name: is required', 'lane.maxConcurrent: must be >= 1', 'lane.queue: must be >= 0', 'lane.burst: unknown key'])
      assert.ok(issues.some((i) => i.endsWith(expected)), `${expected} in ${JSON.stringify(issues)}`);
  });
});
