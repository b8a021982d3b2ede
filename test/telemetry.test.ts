import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestIssuer, startGateway, startUpstream, waitFor, type TestGateway, type TestIssuer, type TestUpstream } from './helpers.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number };
}

/** An OTLP/HTTP collector in the test: takes JSON export requests and keeps their spans. */
async function startCollector() {
  const spans: OtlpSpan[] = [];
  const contentTypes: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.push(String(req.headers['content-type']));
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, contentTypes, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const SERVER = 2;
const CLIENT = 3;
const attr = (s: OtlpSpan, key: string) => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
};
const tp = (header: unknown) => /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(String(header));

describe('OpenTelemetry export (OTLP/HTTP)', () => {
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let up: TestUpstream;
  let gw: TestGateway;
  let idp: TestIssuer;
  let token: string;

  before(async () => {
    collector = await startCollector();
    up = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'e-1', path: req.url }));
    });
    idp = await createTestIssuer('otel-idp');
    gw = await startGateway(`
version: 1
telemetry: { serviceName: hcgw-test, otlp: { url: "${collector.url}", exportIntervalMs: 50 } }
identity:
  issuers: [ ${idp.yaml} ]
upstreams:
  ehr: { url: "${up.url}" }
  billing: { url: "${up.url}" }
routes:
  - id: enc
    layer: system
    match: { methods: [GET], path: /system/enc/:id }
    target: { upstream: ehr, path: /Encounter/:id }
    policies: [ { jwt: { issuers: [otel-idp] } }, { rate-limit: { key: client, limit: 1000, window: 1m } } ]
  - id: summary
    layer: process
    match: { methods: [GET], path: /process/summary/:id }
    target:
      compose:
        - { name: encounter, upstream: ehr, path: "/Encounter/{{params.id}}" }
        - { name: claims, upstream: billing, path: /claims, query: { encounter: "{{steps.encounter.body.id}}" } }
      merge: { encounter: steps.encounter.body, claims: steps.claims.body }
    policies: [ { jwt: { issuers: [otel-idp] } } ]
`);
    token = await idp.mint({ clientId: 'otel-client' });
  });
  after(async () => {
    await gw.close();
    await up.close();
    await collector.close();
  });

  const spansOf = (traceId: string) => collector.spans.filter((s) => s.traceId === traceId);

  test('a system route: one trace continuing the caller, request → policy and upstream spans, traceparent propagated', async () => {
    const callerTrace = 'ab'.repeat(16);
    const callerSpan = 'cd'.repeat(8);
    up.requests.length = 0;
    const res = await fetch(`${gw.url}/system/enc/e-1`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${callerTrace}-${callerSpan}-01` } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    await waitFor(() => spansOf(callerTrace).some((s) => s.kind === SERVER), 5000, 'request span exported');
    const spans = spansOf(callerTrace);
    const server = spans.filter((s) => s.kind === SERVER);
    assert.equal(server.length, 1);
    const root = server[0];
    assert.equal(root.parentSpanId, callerSpan);
    assert.equal(root.name, 'GET enc');
    assert.equal(attr(root, 'hcgw.route'), 'enc');
    assert.equal(attr(root, 'http.response.status_code'), 200);
    const upstream = spans.filter((s) => s.kind === CLIENT);
    assert.equal(upstream.length, 1);
    assert.equal(upstream[0].name, 'upstream ehr');
    assert.equal(upstream[0].parentSpanId, root.spanId);
    // The upstream was called with this trace and the upstream span as its parent.
    const sent = tp(up.requests[0].headers.traceparent);
    assert.ok(sent);
    assert.equal(sent[1], callerTrace);
    assert.equal(sent[2], upstream[0].spanId);
    // The jwt policy ran asynchronously (signature verification): it has its own span under the request.
    const jwt = spans.find((s) => s.name === 'policy jwt');
    assert.ok(jwt, `spans: ${spans.map((s) => s.name).join(', ')}`);
    assert.equal(jwt.parentSpanId, root.spanId);
    // Nothing in the spans names the path's identifier or the token.
    const text = JSON.stringify(spans);
    assert.ok(!text.includes('/system/enc/e-1') && !text.includes(token));
    assert.ok(collector.contentTypes.every((c) => c.startsWith('application/json')));
  });

  test('one trace per request: requests without a caller context start their own traces', async () => {
    const before = new Set(collector.spans.map((s) => s.traceId));
    const sentParents: string[] = [];
    for (let i = 0; i < 3; i++) {
      up.requests.length = 0;
      const res = await fetch(`${gw.url}/system/enc/e-${i}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      sentParents.push(tp(up.requests[0].headers.traceparent)![1]);
    }
    assert.equal(new Set(sentParents).size, 3);
    await waitFor(() => sentParents.every((t) => spansOf(t).some((s) => s.kind === SERVER)), 5000, 'three traces exported');
    for (const t of sentParents) {
      assert.ok(!before.has(t));
      const spans = spansOf(t);
      assert.equal(spans.filter((s) => s.kind === SERVER).length, 1);
      assert.equal(spans.filter((s) => s.kind === SERVER)[0].parentSpanId ?? '', '');
      assert.equal(spans.filter((s) => s.kind === CLIENT).length, 1);
    }
  });

  test('a malformed or all-zero caller traceparent starts a new trace', async () => {
    for (const bad of ['00-' + '0'.repeat(32) + '-' + 'cd'.repeat(8) + '-01', 'garbage', '00-ABABABABABABABABABABABABABABABAB-cdcdcdcdcdcdcdcd-01']) {
      up.requests.length = 0;
      const res = await fetch(`${gw.url}/system/enc/x`, { headers: { authorization: `Bearer ${token}`, traceparent: bad } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      const sent = tp(up.requests[0].headers.traceparent);
      assert.ok(sent);
      assert.notEqual(sent[1], '0'.repeat(32));
      assert.ok(!bad.includes(sent[1].toUpperCase()) && !bad.includes(sent[1]));
    }
  });

  test('a process route: a span per step, each upstream call under the request span', async () => {
    const callerTrace = 'ef'.repeat(16);
    const res = await fetch(`${gw.url}/process/summary/e-1`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${callerTrace}-${'12'.repeat(8)}-01` } });
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    await waitFor(() => spansOf(callerTrace).filter((s) => s.kind === CLIENT).length >= 2 && spansOf(callerTrace).some((s) => s.kind === SERVER), 5000, 'process spans exported');
    const spans = spansOf(callerTrace);
    const root = spans.find((s) => s.kind === SERVER)!;
    const steps = spans.filter((s) => s.name.startsWith('step '));
    assert.deepEqual(steps.map((s) => s.name).sort(), ['step claims', 'step encounter']);
    for (const s of steps) {
      assert.equal(s.parentSpanId, root.spanId);
      assert.equal(attr(s, 'hcgw.step.outcome'), 'ok');
    }
    const calls = spans.filter((s) => s.kind === CLIENT);
    assert.deepEqual(calls.map((s) => s.name).sort(), ['upstream billing', 'upstream ehr']);
    for (const c of calls) assert.equal(c.parentSpanId, root.spanId);
  });

  test('an upstream failure marks the upstream and request spans as errors', async () => {
    const callerTrace = '34'.repeat(16);
    await up.close();
    const res = await fetch(`${gw.url}/system/enc/e-1`, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${callerTrace}-${'56'.repeat(8)}-01` } });
    assert.equal(res.status, 502);
    await res.arrayBuffer();
    await waitFor(() => spansOf(callerTrace).some((s) => s.kind === SERVER), 5000, 'error trace exported');
    const spans = spansOf(callerTrace);
    assert.equal(spans.find((s) => s.kind === SERVER)!.status?.code, 2);
    assert.ok(spans.filter((s) => s.kind === CLIENT).every((s) => s.status?.code === 2));
    assert.ok(spans.some((s) => s.kind === CLIENT));
  });
});

describe('telemetry off (the default)', () => {
  test('no tracer is created and traceparent is still propagated', async () => {
    const up = await startUpstream();
    const gw = await startGateway(`
version: 1
upstreams: { a: { url: "${up.url}" } }
routes:
  - { id: r, layer: system, match: { path: /r }, target: { upstream: a, path: /r } }
`);
    try {
      assert.equal(gw.gw.telemetry, undefined);
      const caller = `00-${'9a'.repeat(16)}-${'bc'.repeat(8)}-01`;
      await (await fetch(`${gw.url}/r`, { headers: { traceparent: caller } })).arrayBuffer();
      const sent = tp(up.requests[0].headers.traceparent);
      assert.equal(sent?.[1], '9a'.repeat(16));
      assert.notEqual(sent?.[2], 'bc'.repeat(8));
    } finally {
      await gw.close();
      await up.close();
    }
  });

  test('telemetry config is validated: otlp.url must be http(s), unknown keys refused', async () => {
    const { configIssues } = await import('./helpers.ts');
    for (const t of ['{ otlp: { url: "ftp://x/v1/traces" } }', '{ otlp: {} }', '{ otlp: { url: "http://x/v1/traces", colour: red } }', '{ tracing: true }']) {
      const issues = await configIssues(`version: 1\ntelemetry: ${t}\nroutes: []\n`);
      assert.ok(issues.some((i) => /telemetry/.test(i)), `${t}: ${issues.join('; ')}`);
    }
  });
});
