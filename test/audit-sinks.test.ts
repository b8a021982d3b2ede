import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createAuditRegistry } from '../gateway/audit/registry.ts';
import { verifyAuditFiles } from '../gateway/audit/verify.ts';
import { createMetrics, type Metrics } from '../gateway/ops/metrics.ts';
import { auditSection, captureLogger, deadPort, problem, startGateway, startUpstream, waitFor, type TestGateway, type TestUpstream, tempDir } from './helpers.ts';

const HASH_KEY = 'h'.repeat(32);
const log = captureLogger();

async function counter(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number> {
  const m = metrics.registry.getSingleMetric(name);
  assert.ok(m, `metric ${name} exists`);
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

/** A trail over the given sinks, as one gateway's registry would build it. */
function trailWith(sinks: Array<Record<string, unknown>>, extra: { stdout?: PassThrough } = {}) {
  const metrics = createMetrics();
  const registry = createAuditRegistry({ logger: log.logger, metrics, stdout: extra.stdout });
  const dir = tempDir('hcgw-audit-sink-');
  const { trail } = registry.acquire(auditSection({ hashKey: HASH_KEY, flushIntervalMs: 5, sinks }), dir);
  const append = (n: number, from = 0) => {
    for (let i = 0; i < n; i++) trail.append({ n: from + i });
  };
  return { metrics, registry, trail, dir, append };
}

/** The JSON lines a fake SIEM received, in arrival order. */
const receivedLines = (siem: TestUpstream) => siem.requests.flatMap((r) => r.body.split('\n').filter(Boolean));

async function verifyLines(ls: string[], partial = false) {
  const file = join(tempDir('hcgw-siem-'), 'received.log');
  writeFileSync(file, `${ls.join('\n')}\n`);
  return verifyAuditFiles([file], { partial });
}

describe('audit sinks', () => {
  after(() => log.logger.close());

  test('http: batched POSTs of JSON lines, in chain order, with the configured headers', async () => {
    const siem = await startUpstream((_req, res) => res.end());
    try {
      const t = trailWith([{ kind: 'http', url: `${siem.url}/ingest`, batchSize: 4, headers: { authorization: 'Splunk test-siem-token' } }]);
      t.append(10);
      await waitFor(() => receivedLines(siem).length >= 10, 5000, 'SIEM to receive 10 records');
      await t.registry.close();
      assert.ok(siem.requests.every((r) => r.method === 'POST' && r.url === '/ingest'));
      assert.ok(siem.requests.every((r) => r.headers['content-type'] === 'application/x-ndjson' && r.headers.authorization === 'Splunk test-siem-token'));
      assert.ok(siem.requests.every((r) => r.body.split('\n').filter(Boolean).length <= 4), 'no POST exceeds batchSize');
      const ls = receivedLines(siem);
      assert.deepEqual(
        ls.map((l) => JSON.parse(l).n),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      assert.equal((await verifyLines(ls)).ok, true);
      assert.equal(await counter(t.metrics, 'hcgw_audit_records_total', { sink: 'http' }), 10);
    } finally {
      await siem.close();
    }
  });

  test('http: a failing SIEM is retried with backoff; each record arrives once, in order', async () => {
    let calls = 0;
    const siem = await startUpstream((_req, res) => {
      res.statusCode = ++calls <= 2 ? 503 : 200;
      res.end();
    });
    try {
      const t = trailWith([{ kind: 'http', url: siem.url, batchSize: 100, retryInitialMs: 20, retryMaxMs: 100 }]);
      t.append(3);
      await waitFor(() => calls >= 3, 5000, 'a successful POST after two failures');
      t.append(3, 3);
      await t.registry.close();
      const delivered = siem.requests.filter((_r, i) => i >= 2).flatMap((r) => r.body.split('\n').filter(Boolean));
      assert.deepEqual(
        delivered.map((l) => JSON.parse(l).n),
        [0, 1, 2, 3, 4, 5],
      );
      assert.equal((await verifyLines(delivered)).ok, true);
      assert.equal(await counter(t.metrics, 'hcgw_audit_sink_failures_total', { sink: 'http', kind: 'http-status' }), 2);
      assert.equal(await counter(t.metrics, 'hcgw_audit_records_dropped_total', { sink: 'http' }), 0);
    } finally {
      await siem.close();
    }
  });

  test('http: when the buffer is full new records are dropped and counted; shutdown gives up in closeTimeoutMs', async () => {
    const port = await deadPort();
    const t = trailWith([{ kind: 'http', url: `http://127.0.0.1:${port}/`, maxBufferRecords: 3, retryInitialMs: 20, retryMaxMs: 50, closeTimeoutMs: 200 }]);
    t.append(10);
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_records_dropped_total', { reason: 'overflow' })) === 7, 5000, '7 overflow drops');
    assert.equal(t.trail.healthy, false);
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_sink_failures_total', { sink: 'http', kind: 'network' })) >= 1, 5000, 'a failed POST');
    assert.ok(log.lines.some((l) => l.includes('audit records are being dropped')));
    const t0 = Date.now();
    await t.registry.close();
    assert.ok(Date.now() - t0 < 3000, `close took ${Date.now() - t0}ms`);
    assert.equal(await counter(t.metrics, 'hcgw_audit_records_dropped_total', { reason: 'shutdown' }), 3);
  });

  test('http: a batch the SIEM rejects (4xx) is dropped, counted and bridged by a gap entry; the next one still goes', async () => {
    let calls = 0;
    const siem = await startUpstream((_req, res) => {
      res.statusCode = ++calls === 1 ? 400 : 200;
      res.end();
    });
    try {
      const t = trailWith([{ kind: 'http', url: siem.url }]);
      t.append(2);
      await waitFor(() => calls >= 1, 5000, 'first POST');
      t.append(2, 2);
      await t.registry.close();
      assert.equal(await counter(t.metrics, 'hcgw_audit_records_dropped_total', { sink: 'http', reason: 'rejected' }), 2);
      const after = receivedLines(siem).slice(2);
      assert.deepEqual(
        after.map((l) => JSON.parse(l).n),
        [undefined, 2, 3],
        'the rejected batch was not retried',
      );
      assert.deepEqual(
        (({ chain, count, reason }) => ({ chain, count, reason }))(JSON.parse(after[0])),
        { chain: 'gap', count: 2, reason: 'rejected by the sink' },
      );
      const r = await verifyLines(after, true);
      assert.ok(r.ok && r.records === 2 && r.notes?.length === 1, `the rejected records' own lines, then a gap entry standing for them: ${JSON.stringify(r)}`);
    } finally {
      await siem.close();
    }
  });

  test('stdout and file sinks get the same chained lines', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString()));
    const t = trailWith([{ kind: 'file', path: 'audit.log' }, { kind: 'stdout' }], { stdout: out });
    t.append(4);
    await t.registry.close();
    const fromFile = readFileSync(join(t.dir, 'audit.log'), 'utf8');
    assert.equal(chunks.join(''), fromFile);
    assert.equal(fromFile.split('\n').filter(Boolean).length, 4);
  });

  test('a file sink that cannot be opened is counted and retried, not silently ignored', async () => {
    const dir = tempDir('hcgw-audit-blocked-');
    writeFileSync(join(dir, 'not-a-dir'), '');
    const t = trailWith([{ kind: 'file', path: join(dir, 'not-a-dir', 'audit.log'), maxBufferRecords: 2, retryInitialMs: 20, closeTimeoutMs: 100 }]);
    t.append(5);
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_records_dropped_total', { reason: 'overflow' })) === 3, 5000, 'overflow drops');
    await waitFor(async () => (await counter(t.metrics, 'hcgw_audit_sink_failures_total', { sink: 'file', kind: 'open' })) >= 2, 5000, 'a retried open');
    assert.equal(t.trail.healthy, false);
    await t.registry.close();
  });
});

describe('audit failMode', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    const port = await deadPort();
    gw = await startGateway(`
version: 1
upstreams: { u: { url: "${up.url}" } }
audit:
  hashKey: "${HASH_KEY}"
  flushIntervalMs: 0
  sinks: [ { kind: http, url: "http://127.0.0.1:${port}/", maxBufferRecords: 1, retryInitialMs: 20, closeTimeoutMs: 100 } ]
routes:
  - { id: strict, layer: system, match: { path: /strict }, target: { upstream: u, path: /x }, policies: [ { audit: { failMode: closed } } ] }
  - { id: lenient, layer: system, match: { path: /lenient }, target: { upstream: u, path: /x }, policies: [ { audit: {} } ] }
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('closed: 503 while audit records are being lost; open keeps serving', async () => {
    let res: Response | undefined;
    await waitFor(
      async () => {
        res = await fetch(`${gw.url}/strict`);
        if (res.status !== 503) await res.arrayBuffer();
        return res.status === 503;
      },
      5000,
      'the strict route to refuse',
    );
    const p = await problem(res!);
    assert.equal(p.type, 'https://hcgw.dev/problems/unavailable');
    assert.ok((await counter(gw.gw.metrics, 'hcgw_audit_records_dropped_total', { reason: 'overflow' })) >= 1);
    const lenient = await fetch(`${gw.url}/lenient`);
    assert.equal(lenient.status, 200);
    await lenient.arrayBuffer();
  });
});
