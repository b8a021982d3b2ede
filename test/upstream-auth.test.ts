import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportPKCS8, generateKeyPair, decodeJwt } from 'jose';
import Provider from 'oidc-provider';
import { assertIssues, configIssues, deadPort, problem, startGateway, startUpstream, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

const API = 'https://erp.hcgw.test';
const SECRET_CLIENT = { id: 'hcgw-erp', secret: 'hcgw-erp-client-secret-0123456789abcdef' };
const PKJWT_CLIENT = 'hcgw-erp-pkjwt';
const API_KEY = 'api-key-value-0123456789-do-not-log';
const BASIC_PASSWORD = 'basic-password-0123456789-do-not-log';
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

/**
 * A real OAuth 2.0 authorization server (oidc-provider) issuing JWT access tokens through the client
 * credentials grant, to a client with a secret and to one authenticating with private_key_jwt. Every
 * token request is counted; the access-token lifetime can be changed between tests.
 */
async function startAuthorizationServer(clientPublicJwk: Record<string, unknown>) {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const state = { ttl: 300, tokenRequests: 0, assertions: [] as string[] };
  const provider = new Provider(issuer, {
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid: 'as-1', alg: 'ES256', use: 'sig' }] as never },
    cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    clients: [
      { client_id: SECRET_CLIENT.id, client_secret: SECRET_CLIENT.secret, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] },
      {
        client_id: PKJWT_CLIENT,
        token_endpoint_auth_method: 'private_key_jwt',
        token_endpoint_auth_signing_alg: 'ES256',
        jwks: { keys: [clientPublicJwk] },
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      } as never,
    ],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => API,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'erp.read erp.write', audience: API, accessTokenFormat: 'jwt', accessTokenTTL: state.ttl, jwt: { sign: { alg: 'ES256' } } }),
      },
    },
  });
  provider.use(async (ctx, next) => {
    const isToken = ctx.method === 'POST' && ctx.path === '/token';
    if (isToken) state.tokenRequests++;
    await next();
    const assertion = (ctx as { oidc?: { params?: { client_assertion?: string } } }).oidc?.params?.client_assertion;
    if (isToken && assertion) state.assertions.push(assertion);
  });
  server.on('request', provider.callback());
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    state,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('upstream credentials: the gateway as an OAuth client (oidc-provider) and static credentials', () => {
  let as: Awaited<ReturnType<typeof startAuthorizationServer>>;
  let erp: TestUpstream;
  let hanging: http.Server;
  let gw: TestGateway;
  /** Tokens the ERP no longer accepts (as after a revocation or key rotation at the AS). */
  const revoked = new Set<string>();

  before(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    as = await startAuthorizationServer({ ...(await exportJWK(publicKey)), kid: 'hcgw-1', alg: 'ES256', use: 'sig' });
    erp = await startUpstream((req, res) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      res.setHeader('content-type', 'application/json');
      if (token && revoked.has(token)) {
        res.statusCode = 401;
        res.setHeader('www-authenticate', 'Bearer error="invalid_token"');
        return res.end('{"error":"invalid_token"}');
      }
      res.end(JSON.stringify({ authorization: req.headers.authorization ?? null, apiKey: req.headers['x-api-key'] ?? null, dpop: req.headers.dpop ?? null }));
    });
    hanging = http.createServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', () => r()));
    const file = writeConfig('');
    writeFileSync(join(dirname(file), 'hcgw-client.pem'), await exportPKCS8(privateKey));
    process.env.HCGW_TEST_ERP_SECRET = SECRET_CLIENT.secret;
    process.env.HCGW_TEST_API_KEY = API_KEY;
    const cc = (extra: string) => `{ url: "${erp.url}", auth: { kind: client-credentials, tokenUrl: "${as.tokenUrl}", clientId: ${SECRET_CLIENT.id}, clientSecret: "\${env:HCGW_TEST_ERP_SECRET}", scope: erp.read${extra} } }`;
    const upstreams: Record<string, string> = {
      secret: cc(''),
      concurrent: cc(''),
      retry: cc(''),
      short: cc(', refreshSkewSec: 2'),
      pkjwt: `{ url: "${erp.url}", auth: { kind: client-credentials, tokenUrl: "${as.tokenUrl}", clientId: ${PKJWT_CLIENT}, privateKeyJwt: { keyFile: hcgw-client.pem, kid: hcgw-1, alg: ES256 }, scope: erp.read } }`,
      down: `{ url: "${erp.url}", auth: { kind: client-credentials, tokenUrl: "http://127.0.0.1:${await deadPort()}/token", clientId: x, clientSecret: y } }`,
      slow: `{ url: "${erp.url}", auth: { kind: client-credentials, tokenUrl: "http://127.0.0.1:${(hanging.address() as AddressInfo).port}/token", clientId: x, clientSecret: y, timeoutMs: 300 } }`,
      refused: `{ url: "${erp.url}", auth: { kind: client-credentials, tokenUrl: "${as.tokenUrl}", clientId: ${SECRET_CLIENT.id}, clientSecret: wrong-secret } }`,
      apikey: `{ url: "${erp.url}", auth: { kind: api-key, header: X-Api-Key, value: "\${env:HCGW_TEST_API_KEY}" } }`,
      basic: `{ url: "${erp.url}", auth: { kind: basic, username: hcgw, password: "${BASIC_PASSWORD}" } }`,
    };
    const routes = Object.keys(upstreams).flatMap((name) => [
      `  - { id: ${name}, layer: system, match: { methods: [GET, POST], path: /${name}/items }, target: { upstream: ${name}, path: /items } }`,
      `  - { id: ${name}-stream, layer: system, match: { methods: [GET], path: /${name}/stream }, target: { upstream: ${name}, path: /items } }`,
    ]);
    writeFileSync(
      file,
      `version: 1
server: { admin: { port: 0, token: ${ADMIN_TOKEN} } }
upstreams:
${Object.entries(upstreams).map(([n, u]) => `  ${n}: ${u}`).join('\n')}
routes:
${routes.join('\n')}
  - id: buffered
    layer: system
    match: { methods: [GET], path: /retry/buffered }
    target: { upstream: retry, path: /items }
    policies: [{ validate: { response: { schema: { type: object } } } }]
`,
    );
    gw = await startGateway('', { file });
  });
  after(async () => {
    if (process.env.DEBUG_LINES) console.log(gw?.lines.join('\n'));
    await gw?.close();
    await Promise.all([as?.close(), erp?.close(), new Promise((r) => hanging?.close(r))]);
  });

  const get = (path: string, init: RequestInit = {}) => fetch(`${gw.url}${path}`, init);
  const seenToken = async (res: Response) => {
    assert.equal(res.status, 200);
    const auth = ((await res.json()) as { authorization: string }).authorization;
    assert.match(auth, /^Bearer /);
    return auth.slice(7);
  };

  test('client secret: the ERP gets a token issued to the gateway, not the caller\'s Authorization', async () => {
    const token = await seenToken(await get('/secret/items', { headers: { authorization: 'Bearer caller-token-must-not-pass' } }));
    const claims = decodeJwt(token);
    assert.equal(claims.iss, as.issuer);
    assert.equal(claims.client_id, SECRET_CLIENT.id);
    assert.equal(claims.aud, API);
    assert.equal(claims.scope, 'erp.read');
  });

  test('the token is cached: later calls (proxy and streaming routes) reuse it without a token request', async () => {
    const first = await seenToken(await get('/secret/items'));
    const before = as.state.tokenRequests;
    for (let i = 0; i < 5; i++) assert.equal(await seenToken(await get(i % 2 ? '/secret/stream' : '/secret/items')), first);
    assert.equal(as.state.tokenRequests, before);
  });

  test('private_key_jwt (RFC 7523): the assertion is signed with the configured key, kid and alg, audience = token endpoint', async () => {
    const before = as.state.assertions.length;
    const token = await seenToken(await get('/pkjwt/items'));
    assert.equal(decodeJwt(token).client_id, PKJWT_CLIENT);
    assert.equal(as.state.assertions.length, before + 1);
    const assertion = as.state.assertions.at(-1)!;
    const header = JSON.parse(Buffer.from(assertion.split('.')[0], 'base64url').toString());
    assert.deepEqual([header.alg, header.kid], ['ES256', 'hcgw-1']);
    const payload = decodeJwt(assertion);
    assert.equal(payload.iss, PKJWT_CLIENT);
    assert.equal(payload.sub, PKJWT_CLIENT);
    assert.equal(payload.aud, as.tokenUrl);
  });

  test('50 concurrent calls on a cold cache → exactly one token request, all calls carry the same token', async () => {
    const before = as.state.tokenRequests;
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => get(i % 2 ? '/concurrent/items' : '/concurrent/stream').then(seenToken)));
    assert.equal(as.state.tokenRequests - before, 1);
    assert.equal(new Set(tokens).size, 1);
  });

  test('expiry: a token is renewed refreshSkewSec before it expires, not used until it fails', async () => {
    as.state.ttl = 4;
    try {
      const t0 = Date.now();
      const first = await seenToken(await get('/short/items'));
      const exp = decodeJwt(first).exp!;
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await seenToken(await get('/short/items')), first, 'still fresh 1.5 s into a 4 s lifetime');
      // renewed 2 s (refreshSkewSec) before expiry, i.e. 2 s after it was fetched
      await new Promise((r) => setTimeout(r, t0 + 2300 - Date.now()));
      const second = await seenToken(await get('/short/items'));
      assert.notEqual(second, first);
      assert.ok(Date.now() / 1000 < exp, 'renewed while the old token was still valid');
    } finally {
      as.state.ttl = 300;
    }
  });

  for (const [kind, path] of [['buffered', '/retry/buffered'], ['proxied', '/retry/items'], ['streaming', '/retry/stream']] as const) {
    test(`upstream 401 to the gateway's token (${kind}) → one retry with a fresh token, the client sees 200`, async () => {
      const old = await seenToken(await get('/retry/items'));
      revoked.add(old);
      const before = as.state.tokenRequests;
      const calls = erp.requests.length;
      const fresh = await seenToken(await get(path));
      assert.notEqual(fresh, old);
      assert.equal(as.state.tokenRequests - before, 1);
      assert.equal(erp.requests.length - calls, 2, 'one refused call, one retry');
    });
  }

  test('a POST with a body is replayed intact on the 401 retry', async () => {
    const old = await seenToken(await get('/retry/items'));
    revoked.add(old);
    const calls = erp.requests.length;
    const res = await get('/retry/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"qty":3}' });
    assert.equal(res.status, 200);
    const sent = erp.requests.slice(calls);
    assert.equal(sent.length, 2);
    assert.deepEqual(sent.map((r) => r.body), ['{"qty":3}', '{"qty":3}']);
  });

  test('a second 401 is passed on (no retry loop)', async () => {
    const old = await seenToken(await get('/retry/items'));
    revoked.add(old);
    const realAdd = revoked.has.bind(revoked);
    // Every token is refused now.
    revoked.has = () => true;
    try {
      const calls = erp.requests.length;
      const res = await get('/retry/items');
      assert.equal(res.status, 401);
      assert.equal(erp.requests.length - calls, 2);
    } finally {
      revoked.has = realAdd;
    }
  });

  for (const [name, reason] of [['down', 'refused connection'], ['slow', 'no answer within timeoutMs'], ['refused', 'invalid_client']] as const) {
    test(`token endpoint ${reason} → 503 problem, the ERP is not called, no secret in the answer`, async () => {
      const calls = erp.requests.length;
      const t0 = Date.now();
      for (const path of [`/${name}/items`, `/${name}/stream`]) {
        const res = await get(path);
        assert.equal(res.status, 503);
        assert.equal(res.headers.get('retry-after'), '5');
        const p = await problem(res);
        assert.equal(p.type, 'https://hcgw.dev/problems/upstream-credentials-unavailable');
        assert.doesNotMatch(JSON.stringify(p), /secret|wrong-secret|stack/i);
      }
      assert.ok(Date.now() - t0 < 3000, 'no hang');
      assert.equal(erp.requests.length, calls);
    });
  }

  test('api-key and basic: the header is set from the (env) secret; the caller cannot override it', async () => {
    const a = (await (await get('/apikey/items', { headers: { 'x-api-key': 'caller-chosen' } })).json()) as { apiKey: string };
    assert.equal(a.apiKey, API_KEY);
    const b = (await (await get('/basic/items', { headers: { authorization: 'Basic Y2FsbGVyOng=' } })).json()) as { authorization: string };
    assert.equal(b.authorization, `Basic ${Buffer.from(`hcgw:${BASIC_PASSWORD}`).toString('base64')}`);
  });

  test('a DPoP proof sent by the caller is not forwarded upstream', async () => {
    const body = (await (await get('/apikey/items', { headers: { dpop: 'eyJhbGciOiJFUzI1NiJ9.e30.sig' } })).json()) as { dpop: unknown };
    assert.equal(body.dpop, null);
  });

  test('secrets and tokens never appear in logs or in the admin API', async () => {
    const token = await seenToken(await get('/secret/items'));
    const admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
    const listing = await (await fetch(`${admin}/admin/routes`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    for (const text of [gw.lines.join('\n'), listing, metrics]) {
      for (const s of [SECRET_CLIENT.secret, API_KEY, BASIC_PASSWORD, token, 'wrong-secret', Buffer.from(`hcgw:${BASIC_PASSWORD}`).toString('base64')]) {
        assert.ok(!text.includes(s), `leaked ${s.slice(0, 8)}…`);
      }
    }
    assert.match(listing, /"secret"/, 'the upstream is listed by name');
  });
});

describe('upstream credentials: configuration errors', () => {
  test('both or neither of clientSecret / privateKeyJwt, an unreadable key file, unknown keys → every issue at load', async () => {
    const issues = await configIssues(`version: 1
upstreams:
  a: { url: "http://127.0.0.1:1", auth: { kind: client-credentials, tokenUrl: "http://127.0.0.1:2/t", clientId: c } }
  b: { url: "http://127.0.0.1:1", auth: { kind: client-credentials, tokenUrl: "http://127.0.0.1:2/t", clientId: c, clientSecret: s, privateKeyJwt: { keyFile: k.pem } } }
  c: { url: "http://127.0.0.1:1", auth: { kind: client-credentials, tokenUrl: "http://127.0.0.1:2/t", clientId: c, privateKeyJwt: { keyFile: missing.pem } } }
  d: { url: "http://127.0.0.1:1", auth: { kind: api-key, header: X-Key } }
  e: { url: "http://127.0.0.1:1", auth: { kind: magic } }
  f: { url: "http://127.0.0.1:1", auth: { kind: basic, username: "a:b", password: p, realm: x } }
routes: []
`);
    assertIssues(issues, [
      /upstreams\.a\.auth.*exactly one of clientSecret or privateKeyJwt/,
      /upstreams\.b\.auth.*exactly one of clientSecret or privateKeyJwt/,
      /upstreams\.c\.auth\.privateKeyJwt\.keyFile.*cannot be read/,
      /upstreams\.d\.auth.*value/,
      /upstreams\.e\.auth\.kind/,
      /upstreams\.f\.auth/,
    ]);
  });
});

describe('upstream credentials: RFC 8693 token exchange', () => {
  let sts: TestUpstream;
  let api: TestUpstream;
  let gw: TestGateway;
  const STS_SECRET = 'sts-client-secret-0123456789abcdef';

  before(async () => {
    // A security token service: exchanges a caller's access token for one with the API's audience.
    sts = await startUpstream((req, res, body) => {
      const form = new URLSearchParams(body);
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'no-store');
      // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
      const [id, secret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':').map(decodeURIComponent);
      const ok =
        id === 'hcgw-sts' &&
        secret === STS_SECRET &&
        form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:token-exchange' &&
        form.get('subject_token_type') === 'urn:ietf:params:oauth:token-type:access_token' &&
        form.get('audience') === 'https://fhir.downstream.test' &&
        form.get('subject_token') !== 'refused-by-sts';
      if (!ok) {
        res.statusCode = 400;
        return res.end('{"error":"invalid_grant"}');
      }
      res.end(JSON.stringify({ access_token: `xchg.${form.get('subject_token')}.for-fhir`, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'N_A', expires_in: 120 }));
    });
    api = await startUpstream();
    gw = await startGateway(`version: 1
upstreams:
  fhir:
    url: "${api.url}"
    auth: { kind: token-exchange, tokenUrl: "${sts.url}/token", clientId: hcgw-sts, clientSecret: "${STS_SECRET}", audience: "https://fhir.downstream.test" }
routes:
  - { id: fhir, layer: system, match: { methods: [GET], path: /fhir/Patient }, target: { upstream: fhir, path: /Patient } }
`);
  });
  after(async () => {
    await gw?.close();
    await Promise.all([sts?.close(), api?.close()]);
  });

  const call = async (token?: string) => fetch(`${gw.url}/fhir/Patient`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const sentAuth = async (res: Response) => {
    assert.equal(res.status, 200);
    return ((await res.json()) as { headers: Record<string, string> }).headers.authorization;
  };

  test("the upstream gets a token exchanged for the caller's, never the caller's own", async () => {
    assert.equal(await sentAuth(await call('alice-token')), 'Bearer xchg.alice-token.for-fhir');
    assert.equal(await sentAuth(await call('bob-token')), 'Bearer xchg.bob-token.for-fhir');
  });

  test('exchanged tokens are cached per caller token', async () => {
    const before = sts.requests.length;
    for (let i = 0; i < 3; i++) assert.equal(await sentAuth(await call('alice-token')), 'Bearer xchg.alice-token.for-fhir');
    assert.equal(sts.requests.length, before);
  });

  test('no caller token → 401, the STS and the upstream are not called', async () => {
    const [s, a] = [sts.requests.length, api.requests.length];
    const res = await call();
    assert.equal(res.status, 401);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/unauthorized');
    assert.deepEqual([sts.requests.length, api.requests.length], [s, a]);
  });

  test('the STS refuses the exchange → 503 upstream-credentials-unavailable, the upstream is not called', async () => {
    const a = api.requests.length;
    const res = await call('refused-by-sts');
    assert.equal(res.status, 503);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/upstream-credentials-unavailable');
    assert.equal(api.requests.length, a);
  });
});
