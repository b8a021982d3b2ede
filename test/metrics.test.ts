import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createTestIssuer, deadPort, startGateway, startUpstream, waitFor, type TestGateway, type TestUpstream, tempDir } from './helpers.ts';

/** The value of one Prometheus sample whose labels include `labels` (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('Prometheus metrics', () => {
  let fast: TestUpstream;
  let slow: TestUpstream;
  let gw: TestGateway;
  let token: string;
  const scrape = async () => {
    const res = await fetch(`${gw.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };

  before(async () => {
    fast = await startUpstream((_req, res) => setTimeout(() => res.end('{}'), 60));
    slow = await startUpstream((_req, res) => setTimeout(() => res.end('{}'), 2000).unref());
    const issuer = await createTestIssuer('metrics-idp');
    token = await issuer.mint({ clientId: 'app-1' });
    const dir = tempDir('hcgw-metrics-');
    gw = await startGateway(`
version: 1
identity: { issuers: [ ${issuer.yaml} ] }
upstreams:
  fast: { url: "${fast.url}" }
  slow: { url: "${slow.url}", timeoutMs: 200 }
  down: { url: "http://127.0.0.1:${await deadPort()}" }
audit: { hashKey: "${'m'.repeat(32)}", flushIntervalMs: 0, sinks: [ { kind: file, path: "${join(dir, 'audit.log')}" } ] }
routes:
  - { id: ok, layer: system, match: { path: /ok }, target: { upstream: fast, path: /x }, policies: [ { jwt: { issuers: [metrics-idp] } }, { audit: {} } ] }
  - { id: slow, layer: system, match: { path: /slow }, target: { upstream: slow, path: /x } }
  - { id: down, layer: system, match: { path: /down }, target: { upstream: down, path: /x } }
`);
  });
  after(async () => {
    await gw.close();
    await fast.close();
    await slow.close();
  });

  test('requests by route, layer and status class; denials by policy and reason', async () => {
    const before = await scrape();
    for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/ok`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
    await (await fetch(`${gw.url}/ok`)).arrayBuffer();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    assert.equal(delta('hcgw_requests_total', { route: 'ok', layer: 'system', status_class: '2xx' }), 3);
    assert.equal(delta('hcgw_requests_total', { route: 'ok', layer: 'system', status_class: '4xx' }), 1);
    assert.equal(delta('hcgw_policy_denials_total', { policy: 'jwt', reason: 'missing-token' }), 1);
    assert.equal(delta('hcgw_request_duration_seconds_count', { route: 'ok', layer: 'system' }), 4);
    assert.equal(delta('hcgw_upstream_duration_seconds_count', { upstream: 'fast' }), 3);
  });

  test('upstream time and gateway overhead are measured apart', async () => {
    const before = await scrape();
    for (let i = 0; i < 3; i++) await (await fetch(`${gw.url}/ok`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    const total = delta('hcgw_request_duration_seconds_sum', { route: 'ok' });
    const upstream = delta('hcgw_upstream_duration_seconds_sum', { upstream: 'fast' });
    const overhead = delta('hcgw_gateway_overhead_seconds_sum', { route: 'ok' });
    assert.equal(delta('hcgw_gateway_overhead_seconds_count', { route: 'ok' }), 3);
    assert.ok(upstream >= 3 * 0.06 * 0.9, `upstream time ${upstream}s covers the upstream's 60ms per request`);
    assert.ok(overhead < upstream, `overhead ${overhead}s excludes the upstream's time (${upstream}s)`);
    assert.ok(Math.abs(total - (upstream + overhead)) < 0.05, `total ${total}s ≈ upstream + overhead`);
  });

  test('upstream errors and timeouts by upstream and kind; a failed call is not counted as overhead', async () => {
    const before = await scrape();
    assert.equal((await fetch(`${gw.url}/down`)).status, 502);
    assert.equal((await fetch(`${gw.url}/slow`)).status, 504);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    assert.ok(delta('hcgw_upstream_errors_total', { upstream: 'down', kind: 'connect' }) >= 1);
    assert.ok(delta('hcgw_upstream_errors_total', { upstream: 'slow', kind: 'timeout' }) >= 1);
    assert.equal(delta('hcgw_requests_total', { route: 'slow', status_class: '5xx' }), 1);
    assert.equal(delta('hcgw_request_duration_seconds_count', { route: 'slow' }), 1);
    assert.equal(delta('hcgw_gateway_overhead_seconds_count', { route: 'slow' }), 0, 'a timeout wait is not gateway overhead');
  });

  test('audit deliveries are counted; rate-limit, lane and audit-loss counters are exposed', async () => {
    const before = sample(await scrape(), 'hcgw_audit_records_total', { sink: 'file' });
    await (await fetch(`${gw.url}/ok`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
    await waitFor(async () => sample(await scrape(), 'hcgw_audit_records_total', { sink: 'file' }) === before + 1, 5000, 'the audit record to be delivered');
    const text = await scrape();
    for (const name of ['hcgw_rate_limited_total', 'hcgw_lane_rejected_total', 'hcgw_audit_sink_failures_total', 'hcgw_audit_records_dropped_total']) {
      assert.ok(text.includes(`# TYPE ${name} counter`), `${name} is exposed`);
    }
  });
});
