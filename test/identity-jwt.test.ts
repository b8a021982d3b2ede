import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { generateKeyPair, exportSPKI, exportJWK, SignJWT, base64url, type CryptoKey } from 'jose';
import { startIdp, type DevIdp } from '../gateway/sandbox/index.ts';
import { configIssues, deadPort, problem, startGateway, startUpstream, writeConfig, writePrincipalEchoPlugin, type TestGateway, type TestUpstream } from './helpers.ts';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Every refusal: problem+json, RFC 6750 challenge, and not a byte of the token echoed anywhere. */
async function assertRefused(res: Response, token: string, status: number, error?: string): Promise<Record<string, unknown>> {
  assert.equal(res.status, status);
  const challenge = res.headers.get('www-authenticate') ?? '';
  assert.match(challenge, /^Bearer realm="hcgw"/);
  if (error) assert.match(challenge, new RegExp(`error="${error}"`));
  else assert.doesNotMatch(challenge, /error=/);
  const p = await problem(res);
  const text = JSON.stringify(p) + challenge;
  for (const part of token.split('.').filter((s) => s.length > 8)) assert.ok(!text.includes(part), 'token text must not be echoed');
  return p;
}

const unsigned = (payload: object) => `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url.encode(JSON.stringify(payload))}.`;

describe('jwt policy: JWT verification against real issuers', () => {
  let idp: DevIdp;
  let other: DevIdp;
  let up: TestUpstream;
  let jwksHost: TestUpstream;
  let gw: TestGateway;
  let ecKeys: Array<{ privateKey: CryptoKey; pem: string }>;
  let ccKey: { privateKey: CryptoKey; jwk: object };
  const jwksHeaders: Record<string, string> = { '/jwks-nostore': 'no-store', '/jwks-cached': 'public, max-age=3600', '/jwks-late': 'public, max-age=3600' };
  let jwksStatus = 200;
  /** What `/jwks-late` answers: an IdP that is down, then serves junk, then its keys. */
  let late: 'down' | 'junk' | 'keys' = 'down';
  const fetches = (path: string) => jwksHost.requests.filter((r) => r.url === path).length;

  before(async () => {
    [idp, other] = await Promise.all([startIdp({ port: 0 }), startIdp({ port: 0 })]);
    up = await startUpstream();
    ecKeys = await Promise.all(
      [1, 2].map(async () => {
        const k = await generateKeyPair('ES256', { extractable: true });
        return { privateKey: k.privateKey, pem: await exportSPKI(k.publicKey) };
      }),
    );
    const cc = await generateKeyPair('ES256', { extractable: true });
    ccKey = { privateKey: cc.privateKey, jwk: { ...(await exportJWK(cc.publicKey)), kid: 'cc-1' } };
    jwksHost = await startUpstream((req, res) => {
      res.statusCode = req.url === '/jwks-late' && late === 'down' ? 503 : jwksStatus;
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', jwksHeaders[req.url ?? ''] ?? 'no-store');
      res.end(req.url === '/jwks-late' && late === 'junk' ? '{"keys": "none"}' : JSON.stringify({ keys: [ccKey.jwk] }));
    });
    const dead = await deadPort();
    const file = writeConfig('');
    const plugin = writePrincipalEchoPlugin(file);
    const route = (id: string, issuers: string, extra = '') => `
  - id: ${id}
    layer: system
    match: { methods: [GET, POST], path: /${id} }
    target: { upstream: up, path: /${id} }
    policies:
      - jwt: { issuers: [${issuers}] }${extra}`;
    writeFileSync(
      file,
      `version: 1
plugins: [${plugin}]
identity:
  issuers:
    - { name: dev, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256], jwksCooldownMs: 0, requiredClaims: [client_id] }
    - { name: other, issuer: "${other.issuer}", jwksUri: "${other.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256], jwksCooldownMs: 600000 }
    - { name: airgap, issuer: "https://airgap.example", audiences: [airgap-api], algorithms: [ES256], keys: [${JSON.stringify(ecKeys[0].pem)}, ${JSON.stringify(ecKeys[1].pem)}] }
    - { name: shared, issuer: "https://hs.example", audiences: [hs-api], algorithms: [HS256], secret: "0123456789abcdef0123456789abcdef" }
    - { name: nostore, issuer: "https://nostore.example", jwksUri: "${jwksHost.url}/jwks-nostore", audiences: [cc], algorithms: [ES256], jwksCooldownMs: 0 }
    - { name: cached, issuer: "https://cached.example", jwksUri: "${jwksHost.url}/jwks-cached", audiences: [cc], algorithms: [ES256], jwksCooldownMs: 0 }
    - { name: late, issuer: "https://late.example", jwksUri: "${jwksHost.url}/jwks-late", audiences: [cc], algorithms: [ES256], jwksCooldownMs: 0 }
    - { name: down, issuer: "https://down.example", jwksUri: "http://127.0.0.1:${dead}/jwks", audiences: [x], algorithms: [RS256], jwksTimeoutMs: 1000 }
upstreams:
  up: { url: "${up.url}" }
routes:${route('dev', 'dev', '\n      - principal-echo: {}')}${route('other', 'other')}${route('both', 'dev, other')}${route('airgap', 'airgap')}${route('shared', 'shared')}${route('nostore', 'nostore')}${route('cached', 'cached')}${route('late', 'late')}${route('down', 'down')}
`,
    );
    gw = await startGateway('', { file });
  });
  after(async () => {
    await gw?.close();
    await Promise.all([idp?.close(), other?.close(), up?.close(), jwksHost?.close()]);
  });

  const get = (path: string, token: string, init: RequestInit = {}) => fetch(`${gw.url}${path}`, { ...init, headers: { ...bearer(token), ...(init.headers as Record<string, string>) } });

  test('a valid token passes; the principal carries issuer, subject, client, scopes and SMART context', async () => {
    const token = await idp.mint({ clientId: 'portal-app', subject: 'user-7', scopes: 'patient/Observation.rs launch', patient: 'Patient/p1', fhirUser: 'Patient/p1' });
    const res = await get('/dev', token);
    assert.equal(res.status, 200);
    const echo = (await res.json()) as { headers: Record<string, string> };
    assert.equal(echo.headers.authorization, undefined, 'the token is not forwarded upstream');
    assert.deepEqual(JSON.parse(echo.headers['x-principal']), {
      issuer: idp.issuer,
      issuerName: 'dev',
      subject: 'user-7',
      clientId: 'portal-app',
      scopes: ['patient/Observation.rs', 'launch'],
      patient: 'p1',
      fhirUser: 'Patient/p1',
    });
  });

  test('a route trusting several issuers accepts each of them', async () => {
    assert.equal((await get('/both', await idp.mint({ clientId: 'a' }))).status, 200);
    assert.equal((await get('/both', await other.mint({ clientId: 'b' }))).status, 200);
  });

  test('attacks on the signature and algorithm are refused with 401 invalid_token', async () => {
    const stranger = await generateKeyPair('RS256');
    const cases: Array<[string, string, string]> = [
      ['alg none', unsigned(idp.claims({ clientId: 'x' })), 'The token algorithm is not allowed'],
      ['HS256 keyed with the RSA public key', await idp.signWith(idp.claims({ clientId: 'x' }), { alg: 'HS256', key: new TextEncoder().encode(idp.publicKeyPem()) }), 'The token algorithm is not allowed'],
      ['unknown kid', await idp.signWith(idp.claims({ clientId: 'x' }), { key: stranger.privateKey, kid: 'attacker-kid' }), 'No matching signing key'],
      ['right kid, wrong key', await idp.signWith(idp.claims({ clientId: 'x' }), { key: stranger.privateKey }), 'Signature verification failed'],
      ['tampered payload', (await idp.mint({ clientId: 'x', scopes: 'a' })).replace(/\.([^.]+)\./, (_, p: string) => `.${base64url.encode(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'admin' }))}.`), 'Signature verification failed'],
    ];
    for (const [what, token, expected] of cases) {
      const p = await assertRefused(await get('/dev', token), token, 401, 'invalid_token');
      assert.equal(p.type, 'https://hcgw.dev/problems/invalid-token', what);
      assert.equal(p.detail, expected, what);
    }
  });

  test('a token that verified once lends nothing to its variants: the same header and issuer with other bytes are refused', async () => {
    const token = await idp.mint({ clientId: 'memo', scopes: 'a' });
    // Twice: the second answer comes from the verified and decoded caches.
    for (let i = 0; i < 2; i++) assert.equal((await get('/dev', token)).status, 200);
    const [h, p, s] = token.split('.');
    const flipped = `${s.slice(0, -2)}${s.at(-2) === 'A' ? 'B' : 'A'}${s.at(-1)}`;
    const escalated = base64url.encode(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scope: 'admin' }));
    const variants: Array<[string, string, string | undefined]> = [
      ['signature altered', `${h}.${p}.${flipped}`, 'Signature verification failed'],
      ['payload altered, header and signature kept', `${h}.${escalated}.${s}`, 'Signature verification failed'],
      ['signature removed', `${h}.${p}.`, undefined],
      ['bytes appended', `${token}A`, undefined],
      ['header only', `${h}..`, undefined],
    ];
    for (const [what, variant, detail] of variants) {
      const res = await get('/dev', variant);
      const problem = await assertRefused(res, variant, 401, 'invalid_token');
      assert.equal(problem.type, 'https://hcgw.dev/problems/invalid-token', what);
      if (detail) assert.equal(problem.detail, detail, what);
    }
    assert.equal((await get('/dev', token)).status, 200, 'the original still passes');
  });

  test('time claims are checked with the clock tolerance (30s)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await idp.mint({ clientId: 'x', expiresIn: -120 });
    assert.equal((await assertRefused(await get('/dev', expired), expired, 401, 'invalid_token')).detail, 'The access token expired');
    assert.equal((await get('/dev', await idp.mint({ clientId: 'x', expiresIn: -10 }))).status, 200, 'within tolerance');
    const notYet = await idp.mint({ clientId: 'x', claims: { nbf: now + 300 } });
    assert.equal((await assertRefused(await get('/dev', notYet), notYet, 401, 'invalid_token')).detail, 'The nbf claim is not acceptable');
    const future = await idp.mint({ clientId: 'x', claims: { iat: now + 300 } });
    assert.equal((await assertRefused(await get('/dev', future), future, 401, 'invalid_token')).detail, 'The iat claim is not acceptable');
    const noExp = await idp.mint({ clientId: 'x', claims: { exp: undefined } });
    await assertRefused(await get('/dev', noExp), noExp, 401, 'invalid_token');
  });

  test('audience, issuer and required claims are enforced', async () => {
    const wrongAud = await idp.mint({ clientId: 'x', audience: 'some-other-api' });
    assert.equal((await assertRefused(await get('/dev', wrongAud), wrongAud, 401, 'invalid_token')).detail, 'The aud claim is not acceptable');
    const forgedIss = await idp.mint({ clientId: 'x', claims: { iss: 'https://evil.example' } });
    assert.equal((await assertRefused(await get('/dev', forgedIss), forgedIss, 401, 'invalid_token')).detail, 'The token issuer is not trusted for this route');
    const noClient = await idp.mint({ claims: { client_id: undefined } });
    assert.equal((await assertRefused(await get('/dev', noClient), noClient, 401, 'invalid_token')).detail, 'The client_id claim is not acceptable');
  });

  test('a token of a trusted issuer is refused on a route that does not trust that issuer', async () => {
    const fromOther = await other.mint({ clientId: 'x' });
    assert.equal((await get('/other', fromOther)).status, 200);
    const p = await assertRefused(await get('/dev', fromOther), fromOther, 401, 'invalid_token');
    assert.equal(p.detail, 'The token issuer is not trusted for this route');
  });

  test('tokens are taken from the Authorization header only', async () => {
    const token = await idp.mint({ clientId: 'x' });
    const inQuery = await fetch(`${gw.url}/dev?access_token=${token}`, { headers: bearer(token) });
    assert.equal((await assertRefused(inQuery, token, 400, 'invalid_request')).type, 'https://hcgw.dev/problems/bad-request');
    const inForm = await fetch(`${gw.url}/dev`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `access_token=${token}` });
    await assertRefused(inForm, token, 400, 'invalid_request');
    const missing = await fetch(`${gw.url}/dev`);
    assert.equal((await assertRefused(missing, token, 401)).type, 'https://hcgw.dev/problems/unauthorized');
    const basic = await fetch(`${gw.url}/dev`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    await assertRefused(basic, token, 401);
    const garbage = 'not-a-jwt-and-no-introspection';
    await assertRefused(await get('/dev', garbage), garbage, 401, 'invalid_token');
    const reached = up.requests.filter((r) => r.url.includes('access_token') || r.body.includes('access_token'));
    assert.equal(reached.length, 0, 'refused requests never reach the upstream');
  });

  test('key rotation: the old key leaves the JWKS, the new kid is fetched without a restart', async () => {
    const before = await idp.mint({ clientId: 'x' });
    assert.equal((await get('/dev', before)).status, 200);
    await idp.rotate();
    const after = await idp.mint({ clientId: 'x' });
    assert.equal((await get('/dev', after)).status, 200, 'the new kid triggers a JWKS refetch');
    const p = await assertRefused(await get('/dev', before), before, 401, 'invalid_token');
    assert.equal(p.detail, 'No matching signing key', 'tokens of the removed key no longer verify');
  });

  test('a flood of unknown kids costs at most one JWKS fetch per cooldown', async () => {
    assert.equal((await get('/other', await other.mint({ clientId: 'x' }))).status, 200);
    const fetchesBefore = other.stats().requests['GET /.well-known/jwks.json'] ?? 0;
    assert.ok(fetchesBefore >= 1);
    const stranger = await generateKeyPair('RS256');
    for (let i = 0; i < 20; i++) {
      const token = await other.signWith(other.claims({ clientId: 'x' }), { key: stranger.privateKey, kid: `bogus-${i}` });
      assert.equal((await get('/other', token)).status, 401);
    }
    assert.equal(other.stats().requests['GET /.well-known/jwks.json'], fetchesBefore, 'no refetch inside the cooldown');
  });

  test('static keys (air-gapped): PEM public keys verify tokens whatever their kid, old and new alike', async () => {
    const sign = (key: CryptoKey, claims: Record<string, unknown> = {}) =>
      new SignJWT({ client_id: 'batch', ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'idp-key-2024' }).setIssuer('https://airgap.example').setAudience('airgap-api').setIssuedAt().setExpirationTime('5m').sign(key);
    assert.equal((await get('/airgap', await sign(ecKeys[0].privateKey))).status, 200);
    assert.equal((await get('/airgap', await sign(ecKeys[1].privateKey))).status, 200, 'second configured key (rotation overlap)');
    const stranger = await generateKeyPair('ES256');
    const forged = await sign(stranger.privateKey);
    await assertRefused(await get('/airgap', forged), forged, 401, 'invalid_token');
  });

  test('HS256 works only with the issuer secret', async () => {
    const sign = (secret: string, alg = 'HS256') =>
      new SignJWT({ client_id: 'svc' }).setProtectedHeader({ alg }).setIssuer('https://hs.example').setAudience('hs-api').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    assert.equal((await get('/shared', await sign('0123456789abcdef0123456789abcdef'))).status, 200);
    const wrong = await sign('ffffffffffffffffffffffffffffffff');
    await assertRefused(await get('/shared', wrong), wrong, 401, 'invalid_token');
    const hs512 = await sign('0123456789abcdef0123456789abcdef', 'HS512');
    assert.equal((await assertRefused(await get('/shared', hs512), hs512, 401, 'invalid_token')).detail, 'The token algorithm is not allowed');
  });

  test("JWKS caching follows the IdP's Cache-Control (no-store: refetch; max-age: reuse)", async () => {
    const sign = (iss: string) =>
      new SignJWT({ client_id: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'cc-1' }).setIssuer(iss).setAudience('cc').setIssuedAt().setExpirationTime('5m').sign(ccKey.privateKey);
    const nostore = await sign('https://nostore.example');
    const cached = await sign('https://cached.example');
    for (let i = 0; i < 3; i++) {
      assert.equal((await get('/nostore', nostore)).status, 200);
      assert.equal((await get('/cached', cached)).status, 200);
    }
    assert.equal(fetches('/jwks-nostore'), 3, 'no-store with a zero cooldown: fetched for every verification');
    assert.equal(fetches('/jwks-cached'), 1, 'max-age=3600: fetched once');
  });

  test('an IdP outage after the keys were fetched does not log everyone out', async () => {
    const token = await new SignJWT({ client_id: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'cc-1' }).setIssuer('https://nostore.example').setAudience('cc').setIssuedAt().setExpirationTime('5m').sign(ccKey.privateKey);
    assert.equal((await get('/nostore', token)).status, 200);
    jwksStatus = 500;
    try {
      const before = fetches('/jwks-nostore');
      assert.equal((await get('/nostore', token)).status, 200, 'stale keys are used while the refresh fails');
      assert.equal(fetches('/jwks-nostore'), before + 1, 'the refresh was attempted');
    } finally {
      jwksStatus = 200;
    }
  });

  test('an IdP whose keys come late: refused while it is down or serves junk, then verified, then its max-age honoured', async () => {
    const token = await new SignJWT({ client_id: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'cc-1' }).setIssuer('https://late.example').setAudience('cc').setIssuedAt().setExpirationTime('5m').sign(ccKey.privateKey);
    for (const state of ['down', 'junk'] as const) {
      late = state;
      for (let i = 0; i < 2; i++) {
        const before = fetches('/jwks-late');
        const res = await get('/late', token);
        assert.notEqual(res.status, 200, `no key set yet (${state}): the token is not accepted`);
        assert.ok([401, 503].includes(res.status), `refused (${state}): ${res.status}`);
        assert.equal(fetches('/jwks-late'), before + 1, `each request without keys asks the IdP again (${state})`);
      }
    }
    late = 'keys';
    const before = fetches('/jwks-late');
    for (let i = 0; i < 3; i++) assert.equal((await get('/late', token)).status, 200);
    assert.equal(fetches('/jwks-late'), before + 1, 'once loaded, the keys are reused for their max-age');
    const forged = await new SignJWT({ client_id: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'cc-1' }).setIssuer('https://late.example').setAudience('cc').setIssuedAt().setExpirationTime('5m').sign((await generateKeyPair('ES256')).privateKey);
    assert.equal((await get('/late', forged)).status, 401, 'a token signed by another key under the same kid is refused');
  });

  test('JWKS unreachable from the start → 503 (fail closed), logged without the token', async () => {
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k' }).setIssuer('https://down.example').setAudience('x').setExpirationTime('5m').sign((await generateKeyPair('RS256')).privateKey);
    const res = await get('/down', token);
    assert.equal(res.status, 503);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/unavailable');
    assert.ok(gw.lines.some((l) => l.includes('token verification unavailable')));
    assert.ok(!gw.lines.some((l) => l.includes(token.split('.')[1])), 'token never logged');
  });
});

describe('jwt policy: configuration mistakes stop start-up', () => {
  const compileErrors = async (issuer: string, issuers = '[bad]') => {
    const file = writeConfig(`version: 1
identity:
  issuers:
    - ${issuer}
upstreams:
  up: { url: "http://127.0.0.1:1" }
routes:
  - { id: r, layer: system, match: { path: /r }, target: { upstream: up, path: /r }, policies: [ { jwt: { issuers: ${issuers} } } ] }
`);
    return (await configIssues({ file })).join('\n');
  };

  test('a private key, a symmetric JWK or a non-key in `keys` is named', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const { exportPKCS8 } = await import('jose');
    const text = await compileErrors(`{ name: bad, issuer: "https://x", audiences: [a], algorithms: [ES256], keys: [${JSON.stringify(await exportPKCS8(privateKey))}, { kty: oct, k: c2VjcmV0 }, "nonsense"] }`);
    assert.match(text, /routes\[0\]\.policies\[0\]\.jwt\.issuers\[0\]: identity issuer "bad": keys\[0\] is a private key/);
    assert.match(text, /keys\[1\] is a symmetric key/);
    assert.match(text, /keys\[2\] is not a PEM public key/);
  });

  test('an issuer verifying JWTs without audiences cannot be trusted by a route', async () => {
    const text = await compileErrors('{ name: bad, issuer: "https://x", jwksUri: "https://x/jwks", algorithms: [RS256] }');
    assert.match(text, /jwt\.issuers\[0\]: identity issuer "bad" has no `audiences`/);
  });

  test('two issuers sharing a name cannot be trusted', async () => {
    const one = '{ name: bad, issuer: "https://x", jwksUri: "https://x/jwks", audiences: [a], algorithms: [RS256] }';
    assert.match(await compileErrors(`${one}\n    - ${one.replace('https://x"', 'https://y"')}`), /identity issuer "bad": the name is used by more than one issuer/);
  });

  test('an unknown issuer name and alg none are refused', async () => {
    assert.match(await compileErrors('{ name: bad, issuer: "https://x", jwksUri: "https://x/jwks", audiences: [a], algorithms: [RS256] }', '[nope]'), /unknown issuer "nope"/);
    assert.match(await compileErrors('{ name: bad, issuer: "https://x", jwksUri: "https://x/jwks", audiences: [a], algorithms: [none] }'), /identity\.issuers\[0\]\.algorithms\[0\]: must be one of/);
  });
});
