import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createClient } from 'redis';
import { Gateway } from '../gateway/http/server.ts';
import {
  captureLogger,
  deadPort,
  problem,
  requireSharedRedis,
  startUpstream,
  uniquePrefix,
  waitFor,
  writeConfig,
  writePrincipalEchoPlugin,
  type TestUpstream,
} from './helpers.ts';

const CLIENT_ID = 'hcgw-gateway';
/** Characters that RFC 6749 §2.3.1 form-encoding must handle before HTTP Basic. */
const CLIENT_SECRET = 'p@ss word:1';
const T0 = 1_900_000_000;

/** A loopback RFC 7662 endpoint: answers from a table, refuses wrong client credentials, counts calls. */
async function startIntrospectionServer(answers: Map<string, Record<string, unknown>>) {
  const server = await startUpstream((req, res, body) => {
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const [id, secret] = basic ? Buffer.from(basic, 'base64').toString().split(/:(.*)/s).map((s) => decodeURIComponent(s.replace(/\+/g, ' '))) : [];
    res.setHeader('content-type', 'application/json');
    if (id !== CLIENT_ID || secret !== CLIENT_SECRET) {
      res.statusCode = 401;
      return res.end(JSON.stringify({ error: 'invalid_client' }));
    }
    const form = new URLSearchParams(body);
    res.end(JSON.stringify(answers.get(form.get('token') ?? '') ?? { active: false }));
  });
  const calls = (token: string) => server.requests.filter((r) => new URLSearchParams(r.body).get('token') === token).length;
  return { ...server, calls };
}

interface StartOptions {
  introspectUrl: string;
  upstream: string;
  store?: string;
  secret?: string;
  /** Echo the principal to the upstream (x-principal). */
  echo?: boolean;
  now?: () => number;
}

function yamlFor(o: StartOptions, plugin?: string) {
  return `version: 1
${plugin ? `plugins: [${plugin}]\n` : ''}store: ${o.store ?? '{ kind: memory }'}
identity:
  issuers:
    - name: as
      issuer: https://as.example
      audiences: [hcgw-api]
      algorithms: [RS256]
      introspection: { url: "${o.introspectUrl}", clientId: ${CLIENT_ID}, clientSecret: "${o.secret ?? CLIENT_SECRET}", negativeCacheSec: 60, cacheMaxTtlSec: 300 }
upstreams:
  up: { url: "${o.upstream}" }
routes:
  - id: api
    layer: system
    match: { methods: [GET], path: /api }
    target: { upstream: up, path: /api }
    policies:
      - jwt: { issuers: [as] }${plugin ? '\n      - principal-echo: {}' : ''}
`;
}

async function start(o: StartOptions) {
  const file = writeConfig('');
  writeFileSync(file, yamlFor(o, o.echo ? writePrincipalEchoPlugin(file) : undefined));
  const gw = await Gateway.create({ file, logger: captureLogger().logger, port: 0, host: '127.0.0.1', now: o.now });
  const { port } = await gw.listen();
  const call = (token: string) => fetch(`http://127.0.0.1:${port}/api`, { headers: { authorization: `Bearer ${token}` } });
  return { gw, call };
}

describe('jwt policy: opaque tokens by RFC 7662 introspection', () => {
  const answers = new Map<string, Record<string, unknown>>();
  let as: Awaited<ReturnType<typeof startIntrospectionServer>>;
  let up: TestUpstream;
  let clock = T0 * 1000;
  let gw: Awaited<ReturnType<typeof start>>;
  const active = (extra: Record<string, unknown> = {}) => ({ active: true, iss: 'https://as.example', aud: 'hcgw-api', client_id: 'partner-billing', sub: 'svc-1', scope: 'billing.read claims.read', exp: T0 + 100, iat: T0 - 10, token_type: 'Bearer', ...extra });

  before(async () => {
    as = await startIntrospectionServer(answers);
    up = await startUpstream();
    gw = await start({ introspectUrl: `${as.url}/introspect`, upstream: up.url, now: () => clock, echo: true });
  });
  after(async () => {
    await gw?.gw.close(1000);
    await Promise.all([as?.close(), up?.close()]);
  });

  test('an active token passes with its claims as the principal; the answer is cached until exp', async () => {
    clock = T0 * 1000;
    answers.set('opaque-active-1', active({ patient: 'p1' }));
    const res = await gw.call('opaque-active-1');
    assert.equal(res.status, 200);
    const principal = JSON.parse(((await res.json()) as { headers: Record<string, string> }).headers['x-principal']);
    assert.equal(principal.clientId, 'partner-billing');
    assert.deepEqual(principal.scopes, ['billing.read', 'claims.read']);
    assert.equal(principal.patient, 'p1');
    assert.equal(principal.issuerName, 'as');
    for (let i = 0; i < 3; i++) assert.equal((await gw.call('opaque-active-1')).status, 200);
    assert.equal(as.calls('opaque-active-1'), 1, 'cached: one introspection call for four requests');
    clock = (T0 + 50) * 1000;
    assert.equal((await gw.call('opaque-active-1')).status, 200);
    assert.equal(as.calls('opaque-active-1'), 1, 'still cached before exp');
    clock = (T0 + 200) * 1000;
    const expired = await gw.call('opaque-active-1');
    assert.equal(expired.status, 401);
    assert.equal((await problem(expired)).detail, 'The access token expired');
    assert.equal(as.calls('opaque-active-1'), 2, 'the cached answer ended at exp and was asked again');
  });

  test('a long-lived token is re-introspected after cacheMaxTtlSec, so a revocation shows', async () => {
    clock = T0 * 1000;
    answers.set('opaque-long', active({ exp: T0 + 86_400 }));
    assert.equal((await gw.call('opaque-long')).status, 200);
    answers.set('opaque-long', { active: false });
    clock = (T0 + 299) * 1000;
    assert.equal((await gw.call('opaque-long')).status, 200, 'inside the cache bound the revocation is not yet seen');
    clock = (T0 + 301) * 1000;
    assert.equal((await gw.call('opaque-long')).status, 401);
    assert.equal(as.calls('opaque-long'), 2);
  });

  test('inactive → 401 invalid_token; the negative answer is cached too', async () => {
    clock = T0 * 1000;
    const res = await gw.call('opaque-revoked');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    const p = await problem(res);
    assert.equal(p.detail, 'The access token is not active');
    assert.ok(!JSON.stringify(p).includes('opaque-revoked'));
    assert.equal((await gw.call('opaque-revoked')).status, 401);
    assert.equal(as.calls('opaque-revoked'), 1);
  });

  test('an "active" answer for another audience or issuer, or not a Bearer token, is not believed', async () => {
    clock = T0 * 1000;
    answers.set('opaque-aud', active({ aud: 'other-api' }));
    answers.set('opaque-iss', active({ iss: 'https://evil.example' }));
    answers.set('opaque-refresh', active({ token_type: 'refresh_token' }));
    answers.set('opaque-future', active({ nbf: T0 + 600 }));
    for (const [token, detail] of [
      ['opaque-aud', 'The aud claim is not acceptable'],
      ['opaque-iss', 'The iss claim is not acceptable'],
      ['opaque-refresh', 'The token is not a Bearer access token'],
      ['opaque-future', 'The nbf claim is not acceptable'],
    ]) {
      const res = await gw.call(token);
      assert.equal(res.status, 401, token);
      assert.equal((await problem(res)).detail, detail);
    }
  });

  test('concurrent requests with one new token share one introspection call', async () => {
    clock = T0 * 1000;
    answers.set('opaque-burst', active());
    const statuses = await Promise.all(Array.from({ length: 10 }, () => gw.call('opaque-burst').then((r) => r.status)));
    assert.deepEqual(statuses, Array(10).fill(200));
    assert.equal(as.calls('opaque-burst'), 1);
  });

  test('a JWT-looking token is never sent to introspection', async () => {
    const jwtish = 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2FzLmV4YW1wbGUifQ.c2ln';
    assert.equal((await gw.call(jwtish)).status, 401);
    assert.equal(as.calls(jwtish), 0);
  });

  test('introspection endpoint down, or refusing our credentials → 503, fail closed', async () => {
    const dead = await deadPort();
    const down = await start({ introspectUrl: `http://127.0.0.1:${dead}/introspect`, upstream: up.url });
    const badCreds = await start({ introspectUrl: `${as.url}/introspect`, upstream: up.url, secret: 'wrong' });
    try {
      answers.set('opaque-x', active({ exp: Math.floor(Date.now() / 1000) + 100 }));
      for (const g of [down, badCreds]) {
        const res = await g.call('opaque-x');
        assert.equal(res.status, 503);
        assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/unavailable');
      }
    } finally {
      await down.gw.close(1000);
      await badCreds.gw.close(1000);
    }
  });
});

describe('jwt policy: introspection answers shared through Redis', () => {
  let redisUrl: string;
  const prefix = uniquePrefix('introspection');
  const answers = new Map<string, Record<string, unknown>>();
  let as: Awaited<ReturnType<typeof startIntrospectionServer>>;
  let up: TestUpstream;
  let redis: ReturnType<typeof createClient>;

  before(async () => {
    redisUrl = await requireSharedRedis();
    as = await startIntrospectionServer(answers);
    up = await startUpstream();
    redis = createClient({ url: redisUrl });
    await redis.connect();
  });
  after(async () => {
    if (redis?.isOpen) {
      for await (const keys of redis.scanIterator({ MATCH: `${prefix}*` })) for (const k of keys) await redis.del(k);
      await redis.quit();
    }
    await Promise.all([as?.close(), up?.close()]);
  });

  test('two gateway instances introspect a token once; Redis holds a hash of it, never the token', async () => {
    const token = `opaque-shared-${Date.now()}`;
    answers.set(token, { active: true, iss: 'https://as.example', aud: 'hcgw-api', client_id: 'c', scope: 'a', exp: Math.floor(Date.now() / 1000) + 120 });
    const options = { introspectUrl: `${as.url}/introspect`, upstream: up.url, store: `{ kind: redis, url: "${redisUrl}", prefix: "${prefix}" }` };
    const a = await start(options);
    const b = await start(options);
    try {
      await waitFor(async () => (await a.gw.store.ping()) && (await b.gw.store.ping()), 5000, 'both gateways connected to Redis');
      assert.equal((await a.call(token)).status, 200);
      assert.equal((await b.call(token)).status, 200);
      assert.equal((await a.call(token)).status, 200);
      assert.equal(as.calls(token), 1, 'the second instance used the shared answer');
      const keys: string[] = [];
      for await (const batch of redis.scanIterator({ MATCH: `${prefix}*` })) keys.push(...batch);
      assert.equal(keys.length, 1);
      const hash = createHash('sha256').update(token).digest('base64url');
      assert.equal(keys[0], `${prefix}introspection:as:${hash}`);
      const value = (await redis.get(keys[0])) ?? '';
      assert.ok(!keys[0].includes(token) && !value.includes(token), 'the raw token is stored nowhere');
      const ttl = await redis.pTTL(keys[0]);
      assert.ok(ttl > 0 && ttl <= 120_000, `expires with the token (ttl ${ttl}ms)`);
    } finally {
      await a.gw.close(1000);
      await b.gw.close(1000);
    }
  });
});
