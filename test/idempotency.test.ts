import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';
import { configIssues, assertIssues, deadPort, problem, requireSharedRedis, spawnGateway, startGateway, uniquePrefix, writeConfig, type GatewayProcess, type TestGateway } from './helpers.ts';
import { SignJWT } from 'jose';

const CHARGE = { encounter: 'Encounter/e-p1-1', code: '99999', amount: 10 };

function issuerYaml(sb: Sandbox): string {
  return `identity:
  issuers:
    - { name: sandbox-idp, issuer: "${sb.idp.issuer}", jwksUri: "${sb.idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }`;
}

/** A POST with an optional Idempotency-Key; the body defaults to the same charge. */
function poster(base: () => string, token: () => string) {
  return (path: string, key: string | undefined, body: unknown = CHARGE, tok = token()) =>
    fetch(base() + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
      body: JSON.stringify(body),
    });
}

describe('idempotency keys (memory store, one gateway)', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  let token: string;
  let otherClient: string;
  before(async () => {
    sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    const dead = await deadPort();
    gw = await startGateway(`
version: 1
${issuerYaml(sb)}
upstreams:
  billing: { url: "${sb.urls.billing}", timeoutMs: 500 }
  erp: { url: "${sb.urls.erp}" }
  dead: { url: "http://127.0.0.1:${dead}" }
routes:
  - id: charges
    layer: system
    match: { methods: [POST], path: /charges }
    target: { upstream: billing, path: /charges }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - idempotency: { ttl: 1h }
  - id: charges-strict
    layer: system
    match: { methods: [POST], path: /strict/charges }
    target: { upstream: billing, path: /charges }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - idempotency: { required: true }
  - id: charges-denied
    layer: system
    match: { methods: [POST], path: /denied/charges }
    target: { upstream: billing, path: /charges }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - idempotency: {}
      - ip-allow: { allow: [10.0.0.0/8] }
  - id: charges-dead
    layer: system
    match: { methods: [POST], path: /dead/charges }
    target: { upstream: dead, path: /charges }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - idempotency: {}
  - id: supply-usage
    layer: process
    match: { methods: [POST], path: /supply-usage/:id }
    target:
      status: 201
      compose:
        - { name: inventory, upstream: erp, method: POST, path: "/inventory/{{body.itemId}}/decrement", body: { quantity: "{{body.quantity}}" } }
        - { name: charge, upstream: billing, method: POST, path: /charges, after: [inventory], body: { encounter: "Encounter/{{params.id}}", code: SUP, amount: "{{body.amount}}" } }
      merge: { stock: steps.inventory.body.onHand, charge: steps.charge.body.id }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - idempotency: {}
`);
    token = await sb.idp.mint({ clientId: 'partner-billing', scopes: ['billing.write'] });
    otherClient = await sb.idp.mint({ clientId: 'erp-batch', scopes: ['billing.write'] });
  });
  after(async () => {
    await gw?.close();
    await sb?.close();
  });
  beforeEach(() => sb.reset());

  const post = poster(() => gw.url, () => token);
  const charges = () => sb.upstreams.billing.stats().requests['POST /charges'] ?? 0;

  test('a repeat with the same key and body is replayed: same status, body and Location; one upstream call', async () => {
    const key = randomUUID();
    const first = await post('/charges', key);
    assert.equal(first.status, 201);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const created = (await first.json()) as { id: string };
    const again = await post('/charges', key);
    assert.equal(again.status, 201);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal(again.headers.get('location'), first.headers.get('location'));
    assert.deepEqual(await again.json(), created);
    assert.equal(charges(), 1);
  });

  test('the same key with a different body → 422, nothing sent upstream', async () => {
    const key = randomUUID();
    assert.equal((await post('/charges', key)).status, 201);
    const res = await post('/charges', key, { ...CHARGE, amount: 99 });
    assert.equal(res.status, 422);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/unprocessable');
    assert.doesNotMatch(JSON.stringify(p), new RegExp(key));
    assert.equal(charges(), 1);
  });

  test('a duplicate while the first is in flight → 409 with Retry-After; afterwards it is a replay', async () => {
    sb.upstreams.billing.setFault({ delayMs: 300, count: 1, method: 'POST', path: '/charges' });
    const key = randomUUID();
    const first = post('/charges', key);
    await new Promise((r) => setTimeout(r, 100));
    const dup = await post('/charges', key);
    assert.equal(dup.status, 409);
    assert.equal(dup.headers.get('retry-after'), '1');
    assert.equal((await problem(dup)).type, 'https://hcgw.dev/problems/conflict');
    assert.equal((await first).status, 201);
    const later = await post('/charges', key);
    assert.equal(later.headers.get('idempotent-replayed'), 'true');
    await later.arrayBuffer();
    assert.equal(charges(), 1);
  });

  test('keys are scoped per caller: another client using the same key gets its own execution', async () => {
    const key = randomUUID();
    const a = (await (await post('/charges', key)).json()) as { id: string };
    const res = await post('/charges', key, CHARGE, otherClient);
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('idempotent-replayed'), null);
    assert.notEqual(((await res.json()) as { id: string }).id, a.id);
    assert.equal(charges(), 2);
  });

  test('without a key requests pass through; `required: true` refuses them; malformed keys are refused', async () => {
    assert.equal((await post('/charges', undefined)).status, 201);
    assert.equal((await post('/charges', undefined)).status, 201);
    assert.equal(charges(), 2);
    const missing = await post('/strict/charges', undefined);
    assert.equal(missing.status, 400);
    assert.equal((await problem(missing)).type, 'https://hcgw.dev/problems/bad-request');
    const tooLong = await post('/strict/charges', 'k'.repeat(256));
    assert.equal(tooLong.status, 400);
    await tooLong.arrayBuffer();
    assert.equal(charges(), 2);
  });

  test('a request denied before reaching the upstream releases its key (no 409, no replayed denial)', async () => {
    const key = randomUUID();
    for (let i = 0; i < 2; i++) {
      const res = await post('/denied/charges', key);
      assert.equal(res.status, 403);
      assert.equal(res.headers.get('idempotent-replayed'), null);
      await res.arrayBuffer();
    }
  });

  test('connection refused (the upstream never saw it) releases the key too', async () => {
    const key = randomUUID();
    for (let i = 0; i < 2; i++) {
      const res = await post('/dead/charges', key);
      assert.equal(res.status, 502);
      assert.equal(res.headers.get('idempotent-replayed'), null);
      await res.arrayBuffer();
    }
  });

  test('an upstream timeout (outcome unknown) is final: the repeat replays the 504 and is not sent again', async () => {
    sb.upstreams.billing.setFault({ delayMs: 1500, count: 1, method: 'POST', path: '/charges' });
    const key = randomUUID();
    const first = await post('/charges', key);
    assert.equal(first.status, 504);
    await first.arrayBuffer();
    // The log phase stores the outcome just after the response: a repeat may meet the lock for a moment.
    let again: Response;
    for (let i = 0; ; i++) {
      again = await post('/charges', key);
      if (again.status !== 409 || i === 20) break;
      await again.arrayBuffer();
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(again.status, 504);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.equal((await problem(again)).type, 'https://hcgw.dev/problems/upstream-timeout');
    assert.equal(charges(), 1);
  });

  test('an upstream 5xx answer is the result too: replayed even once the upstream is healthy', async () => {
    sb.upstreams.billing.setFault({ status: 500, count: 1, method: 'POST', path: '/charges' });
    const key = randomUUID();
    assert.equal((await post('/charges', key)).status, 500);
    const again = await post('/charges', key);
    assert.equal(again.status, 500);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    await again.arrayBuffer();
    assert.equal(charges(), 1);
  });

  test('a process route is deduplicated as a whole: stock decremented and charged once', async () => {
    const key = randomUUID();
    const body = { itemId: 'itm-101', quantity: 2, amount: 15 };
    const first = await post('/supply-usage/e-p1-1', key, body);
    assert.equal(first.status, 201);
    const doc = await first.json();
    const again = await post('/supply-usage/e-p1-1', key, body);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await again.json(), doc);
    assert.deepEqual(doc, { stock: 53, charge: 'chg-1' });
    assert.equal(sb.upstreams.erp.stats().requests['POST /inventory/itm-101/decrement'], 1);
    assert.equal(charges(), 1);
  });
});

describe('idempotency keys: config and store failures', () => {
  test('invalid configs are refused at load with their paths', async () => {
    const yaml = `
version: 1
upstreams: { b: { url: "http://127.0.0.1:9" } }
routes:
  - id: a
    layer: system
    match: { methods: [POST], path: /a }
    target: { upstream: b, path: /x }
    policies: [ { idempotency: { ttl: 5x, replay: true } } ]
  - id: b
    layer: system
    match: { methods: [POST], path: /b }
    target: { upstream: b, path: /x }
    policies: [ { idempotency: { ttl: 1m, lockTtl: 2m } } ]
  - id: c
    layer: system
    match: { methods: [GET], path: /c }
    target: { upstream: b, path: /x }
    policies: [ { idempotency: {} } ]
`;
    assertIssues(await configIssues(yaml), [
      /^routes\[0\]\.policies\[0\]\.idempotency\.ttl: must match pattern/,
      /^routes\[0\]\.policies\[0\]\.idempotency\.replay: unknown key/,
      /^routes\[1\]\.policies\[0\]\.idempotency\.lockTtl: must not be longer than ttl/,
      /^routes\[2\]\.policies\[0\]\.idempotency: route c has no POST/,
    ]);
  });

  const HS_SECRET = '0123456789abcdef0123456789abcdef';
  test('shared store down: `failMode: closed` refuses keyed requests (503), `failMode: open` lets them through', async () => {
    const up = await deadPort();
    const sink = await startGateway(`
version: 1
store: { kind: redis, url: "redis://127.0.0.1:${await deadPort()}", connectTimeoutMs: 100 }
identity: { issuers: [{ name: idp, issuer: https://idp.example, secret: "${HS_SECRET}", algorithms: [HS256], audiences: [api] }] }
upstreams: { echo: { url: "http://127.0.0.1:${up}" } }
routes:
  - { id: closed, layer: system, match: { methods: [POST], path: /closed }, target: { upstream: echo, path: /x }, policies: [ { jwt: { issuers: [idp] } }, { idempotency: {} } ] }
  - { id: open, layer: system, match: { methods: [POST], path: /open }, target: { upstream: echo, path: /x }, policies: [ { jwt: { issuers: [idp] } }, { idempotency: { failMode: open } } ] }
  - { id: legacy-open, layer: system, match: { methods: [POST], path: /legacy-open }, target: { upstream: echo, path: /x }, policies: [ { jwt: { issuers: [idp] } }, { idempotency: { fail: open } } ] }
`);
    try {
      const hsToken = await new SignJWT({ client_id: 'c1' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://idp.example').setAudience('api').setSubject('s1').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(HS_SECRET));
      const post = poster(() => sink.url, () => hsToken);
      const closed = await post('/closed', randomUUID());
      assert.equal(closed.status, 503);
      assert.equal((await problem(closed)).type, 'https://hcgw.dev/problems/unavailable');
      const open = await post('/open', randomUUID());
      assert.equal(open.status, 502, 'let through to the (absent) upstream');
      await open.arrayBuffer();
      const legacy = await post('/legacy-open', randomUUID());
      assert.equal(legacy.status, 502, 'the deprecated `fail: open` still means open');
      await legacy.arrayBuffer();
      assert.ok(sink.lines.some((l) => /deprecated config key/.test(l) && /idempotency\.fail/.test(l)), 'the deprecation is logged at start');
      assert.match(await (await fetch(`${sink.url}/metrics`)).text(), /hcgw_store_failures_total\{policy="idempotency",mode="closed"\} 1/);
    } finally {
      await sink.close();
    }
  });
});

describe('idempotency keys across two gateway processes sharing Redis', () => {
  let sb: Sandbox;
  let gws: GatewayProcess[] = [];
  let prefix: string;
  let redisUrl: string;
  let token: string;
  before(async () => {
    redisUrl = await requireSharedRedis();
    sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    prefix = uniquePrefix('idempotency');
    const file = writeConfig(`
version: 1
store: { kind: redis, url: "${redisUrl}", prefix: "${prefix}" }
${issuerYaml(sb)}
upstreams:
  billing: { url: "${sb.urls.billing}", timeoutMs: 5000 }
routes:
  - id: charges
    layer: system
    match: { methods: [POST], path: /charges }
    target: { upstream: billing, path: /charges }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - idempotency: { ttl: 10m }
`);
    gws = await Promise.all([spawnGateway(file), spawnGateway(file)]);
    token = await sb.idp.mint({ clientId: 'partner-billing', scopes: ['billing.write'] });
  });
  after(async () => {
    await Promise.all(gws.map((g) => g.close()));
    await sb?.close();
    if (redisUrl && prefix) {
      const client = createClient({ url: redisUrl });
      await client.connect();
      const keys = await client.keys(`${prefix}*`);
      if (keys.length) await client.del(keys);
      await client.quit();
    }
  });

  test('20 concurrent duplicates over 2 instances → exactly one charge; every 201 carries that charge', async () => {
    sb.upstreams.billing.setFault({ delayMs: 300, count: 1, method: 'POST', path: '/charges' });
    const key = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await poster(() => gws[i % 2].url, () => token)('/charges', key);
        return { status: res.status, replayed: res.headers.get('idempotent-replayed') === 'true', body: (await res.json()) as { id?: string } };
      }),
    );
    assert.equal(sb.upstreams.billing.stats().requests['POST /charges'], 1, 'one upstream side effect');
    const originals = results.filter((r) => r.status === 201 && !r.replayed);
    assert.equal(originals.length, 1);
    const chargeId = originals[0].body.id;
    assert.ok(chargeId);
    for (const r of results) {
      assert.ok(r.status === 201 || r.status === 409, `unexpected ${r.status}`);
      if (r.status === 201) assert.equal(r.body.id, chargeId);
    }
    for (const g of gws) {
      const res = await poster(() => g.url, () => token)('/charges', key);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('idempotent-replayed'), 'true');
      assert.equal(((await res.json()) as { id: string }).id, chargeId, 'both instances replay the same stored response');
    }
    const client = createClient({ url: redisUrl });
    await client.connect();
    try {
      const keys = await client.keys(`${prefix}idem:*`);
      assert.equal(keys.length, 1);
      assert.doesNotMatch(keys[0], new RegExp(key), 'the client key is hashed, not stored');
      const ttl = await client.pTTL(keys[0]);
      assert.ok(ttl > 9 * 60_000 && ttl <= 10 * 60_000, `ttl ${ttl}`);
    } finally {
      await client.quit();
    }
  });
});

describe('idempotency: only a store outage takes the fail mode', () => {
  async function idempotencyFailingWith(err: Error) {
    const { idempotencyPolicy } = await import('../policies/idempotency/index.ts');
    const { createMetrics } = await import('../gateway/ops/metrics.ts');
    const { captureLogger } = await import('./helpers.ts');
    const fail = async () => {
      throw err;
    };
    const store = { kind: 'memory', get: fail, set: fail, del: fail, incr: fail, slidingHit: fail, ping: async () => true, close: async () => undefined };
    const config = { ttl: '24h', lockTtl: '30s', required: false, failMode: 'open', replayHeaders: [], maxStoredBytes: 65536 };
    const handler = idempotencyPolicy.create(config as never, { logger: captureLogger().logger, metrics: createMetrics(), store, route: { id: 'r', methods: ['POST'] }, now: Date.now } as never);
    const ex = { method: 'POST', req: { headers: { 'idempotency-key': 'k-1' } }, principal: { clientId: 'c1', subject: 's', issuer: 'i' }, body: Buffer.from('{}'), decisions: [] as unknown[], route: { id: 'r' }, params: {}, query: new URLSearchParams(), locals: new Map(), upstreamPath: '/x' };
    return { run: () => (handler as { onRequest(ex: unknown): Promise<void> }).onRequest(ex), ex };
  }

  test('an unreachable store under failMode: open lets the request through, saying so', async () => {
    const { StoreUnavailable } = await import('../gateway/store/index.ts');
    const { run, ex } = await idempotencyFailingWith(new StoreUnavailable());
    await run();
    assert.deepEqual(ex.decisions.at(-1), { policy: 'idempotency', outcome: 'allow', reason: 'store-unavailable-fail-open' });
  });

  test('any other fault is an error (500), never a pass without the duplicate check', async () => {
    for (const err of [new TypeError('x is not a function'), new RangeError('bad')]) {
      const { run, ex } = await idempotencyFailingWith(err);
      await assert.rejects(run(), (e) => e === err);
      assert.equal(ex.decisions.length, 0);
    }
  });
});
