import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { dpopProof, generateDpopKey, type DpopKey } from '../gateway/lib/dpop-proof.ts';
import { createIdentityRegistry } from '../gateway/identity/registry.ts';
import { verifyJwt } from '../policies/jwt/verify.ts';
import {
  assertIssues,
  configIssues,
  problem,
  rawRequest,
  requireSharedRedis,
  spawnGateway,
  startGateway,
  startUpstream,
  tempDir,
  uniquePrefix,
  writeConfig,
  type GatewayProcess,
  type TestGateway,
  type TestUpstream,
} from './helpers.ts';

const ISSUER = 'https://dpop-idp.test';
const AUD = 'hcgw-dpop';

/** An authorization server of our own: RS256 access tokens, optionally bound by cnf. */
async function createIssuer() {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'as-1', alg: 'RS256', use: 'sig' };
  const yaml = (name: string, senderConstraint: string) =>
    `{ name: ${name}, issuer: "${ISSUER}", audiences: [${AUD}], algorithms: [RS256], keys: [${JSON.stringify(jwk)}], senderConstraint: ${senderConstraint}, dpop: { iatWindowSec: 30 } }`;
  const mint = (cnf?: Record<string, string>, key: CryptoKey = privateKey) =>
    new SignJWT({ scope: 'erp.read', client_id: 'dpop-client', jti: crypto.randomUUID(), ...(cnf ? { cnf } : {}), nested: { list: [1, 2] } })
      .setProtectedHeader({ alg: 'RS256', kid: 'as-1' })
      .setIssuer(ISSUER)
      .setAudience(AUD)
      .setSubject('svc-1')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);
  return { yaml, mint, jwk };
}

const routesYaml = (upstream: string, trust: string) => `upstreams:
  up: { url: "${upstream}" }
routes:
  - { id: items, layer: system, match: { methods: [GET, POST], path: /items }, target: { upstream: up, path: /items }, policies: [{ jwt: { issuers: [${trust}] } }] }
`;

describe('DPoP (RFC 9449): sender-constrained access tokens', () => {
  let as: Awaited<ReturnType<typeof createIssuer>>;
  let up: TestUpstream;
  let gw: TestGateway;
  let key: DpopKey;
  let otherKey: DpopKey;
  let token: string;

  before(async () => {
    as = await createIssuer();
    up = await startUpstream();
    gw = await startGateway(`version: 1
identity:
  issuers:
    - ${as.yaml('bound', 'required')}
${routesYaml(up.url, 'bound')}`);
    key = await generateDpopKey('ES256');
    otherKey = await generateDpopKey('ES256');
    token = await as.mint({ jkt: key.jkt });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const url = () => `${gw.url}/items`;
  const send = (headers: Record<string, string>, method = 'GET') => fetch(url(), { method, headers });
  const withProof = async (opts: Partial<Parameters<typeof dpopProof>[1]> & { key?: DpopKey; token?: string } = {}, method = 'GET') =>
    send({ authorization: `DPoP ${opts.token ?? token}`, dpop: await dpopProof(opts.key ?? key, { method, url: url(), accessToken: opts.token ?? token, ...opts }) }, method);
  const refused = async (res: Response, error: 'invalid_dpop_proof' | 'invalid_token', reason?: RegExp) => {
    assert.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^DPoP algs="[A-Za-z0-9 ]+"/);
    assert.match(challenge, new RegExp(`error="${error}"`));
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/invalid-token');
    if (reason) assert.match(String(p.detail), reason);
    assert.ok(!JSON.stringify(p).includes(token.split('.')[1]), 'no token text in the problem');
  };

  test('a valid proof with the bound token is accepted; the proof is not forwarded upstream', async () => {
    const res = await withProof();
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { headers: Record<string, string> };
    assert.equal(seen.headers.dpop, undefined);
    assert.equal(seen.headers.authorization, undefined);
    const post = await withProof({}, 'POST');
    assert.equal(post.status, 200);
  });

  test('a replayed proof (same jti) is refused', async () => {
    const proof = await dpopProof(key, { method: 'GET', url: url(), accessToken: token });
    assert.equal((await send({ authorization: `DPoP ${token}`, dpop: proof })).status, 200);
    await refused(await send({ authorization: `DPoP ${token}`, dpop: proof }), 'invalid_dpop_proof', /already used/);
    // A fresh proof with the same jti is a replay too.
    const jti = 'fixed-jti-1';
    assert.equal((await withProof({ jti })).status, 200);
    await refused(await withProof({ jti }), 'invalid_dpop_proof', /already used/);
  });

  test('wrong method (htm) → invalid_dpop_proof', async () => {
    await refused(await send({ authorization: `DPoP ${token}`, dpop: await dpopProof(key, { method: 'POST', url: url(), accessToken: token }) }), 'invalid_dpop_proof', /method/);
    await refused(await send({ authorization: `DPoP ${token}`, dpop: await dpopProof(key, { method: 'GET', url: url(), accessToken: token }) }, 'POST'), 'invalid_dpop_proof', /method/);
  });

  test('wrong URL (htu: other path, host, port or scheme) → invalid_dpop_proof; the query does not count', async () => {
    const u = new URL(url());
    for (const other of [`${u.origin}/items/other`, `http://localhost:${u.port}/items`, `http://127.0.0.1:1/items`, `https://${u.host}/items`]) {
      await refused(await send({ authorization: `DPoP ${token}`, dpop: await dpopProof(key, { method: 'GET', url: other, accessToken: token }) }), 'invalid_dpop_proof', /URL/);
    }
    const res = await fetch(`${url()}?page=2`, { headers: { authorization: `DPoP ${token}`, dpop: await dpopProof(key, { method: 'GET', url: `${url()}?other=1`, accessToken: token }) } });
    assert.equal(res.status, 200);
  });

  test('stale or future iat → invalid_dpop_proof', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const iat of [now - 120, now - 31, now + 120]) await refused(await withProof({ iat }), 'invalid_dpop_proof', /too old|future/);
    assert.equal((await withProof({ iat: now - 10 })).status, 200);
  });

  test("a proof by another key than the token's cnf.jkt → invalid_token", async () => {
    await refused(await withProof({ key: otherKey }), 'invalid_token', /another key/);
  });

  test('missing or wrong ath → invalid_dpop_proof', async () => {
    const noAth = await dpopProof(key, { method: 'GET', url: url() });
    await refused(await send({ authorization: `DPoP ${token}`, dpop: noAth }), 'invalid_dpop_proof', /not bound to this access token/);
    const otherToken = await as.mint({ jkt: key.jkt });
    const forOther = await dpopProof(key, { method: 'GET', url: url(), accessToken: otherToken });
    await refused(await send({ authorization: `DPoP ${token}`, dpop: forOther }), 'invalid_dpop_proof', /not bound to this access token/);
  });

  test('a DPoP-bound token presented as a plain Bearer token is refused, with or without a proof', async () => {
    await refused(await send({ authorization: `Bearer ${token}` }), 'invalid_token', /DPoP scheme/);
    await refused(await send({ authorization: `Bearer ${token}`, dpop: await dpopProof(key, { method: 'GET', url: url(), accessToken: token }) }), 'invalid_token', /DPoP scheme/);
  });

  test('no proof, two proofs, or a malformed one → invalid_dpop_proof', async () => {
    await refused(await send({ authorization: `DPoP ${token}` }), 'invalid_dpop_proof', /Exactly one/);
    const p1 = await dpopProof(key, { method: 'GET', url: url(), accessToken: token });
    const p2 = await dpopProof(key, { method: 'GET', url: url(), accessToken: token });
    const two = await rawRequest(url(), { headers: { authorization: `DPoP ${token}`, dpop: [p1, p2] } });
    assert.equal(two.status, 401);
    assert.match(String(two.headers['www-authenticate']), /invalid_dpop_proof/);
    await refused(await send({ authorization: `DPoP ${token}`, dpop: 'not-a-jwt' }), 'invalid_dpop_proof', /malformed/);
  });

  test('forged proofs: typ JWT, HS256, no jwk, a private key in jwk, a bad signature → invalid_dpop_proof', async () => {
    const payload = { htm: 'GET', htu: url(), jti: crypto.randomUUID(), ath: createHash('sha256').update(token).digest('base64url') };
    const sign = (header: Record<string, unknown>, k: CryptoKey | Uint8Array) => new SignJWT(payload).setProtectedHeader(header as never).setIssuedAt().sign(k);
    const { privateKey: ecPriv } = await generateKeyPair('ES256', { extractable: true });
    const privJwk = await exportJWK(ecPriv);
    const forged = [
      await sign({ alg: 'ES256', typ: 'JWT', jwk: key.publicJwk }, key.privateKey),
      await sign({ alg: 'HS256', typ: 'dpop+jwt', jwk: { kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0' } }, new TextEncoder().encode('secret-secret-secret-secret-1234')),
      await sign({ alg: 'ES256', typ: 'dpop+jwt' }, key.privateKey),
      await sign({ alg: 'ES256', typ: 'dpop+jwt', jwk: privJwk }, ecPriv),
      (await sign({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk }, otherKey.privateKey)),
    ];
    for (const proof of forged) await refused(await send({ authorization: `DPoP ${token}`, dpop: proof }), 'invalid_dpop_proof');
  });

  test('senderConstraint: required refuses an unbound token; an unbound token sent with the DPoP scheme is refused', async () => {
    const plain = await as.mint();
    const res = await send({ authorization: `Bearer ${plain}` });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.match(String((await problem(res)).detail), /sender-constrained/);
    await refused(await send({ authorization: `DPoP ${plain}`, dpop: await dpopProof(key, { method: 'GET', url: url(), accessToken: plain }) }), 'invalid_token', /not DPoP-bound/);
  });

  test('no token at all: the challenge names both schemes', async () => {
    const res = await send({});
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="hcgw", DPoP algs="/);
  });
});

describe('DPoP replay protection across two gateway processes on Redis', () => {
  let up: TestUpstream;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let as: Awaited<ReturnType<typeof createIssuer>>;

  before(async () => {
    const redis = await requireSharedRedis();
    as = await createIssuer();
    up = await startUpstream();
    const file = writeConfig(`version: 1
store: { kind: redis, url: "${redis}", prefix: "${uniquePrefix('dpop')}" }
identity:
  issuers:
    - ${as.yaml('bound', 'optional')}
${routesYaml(up.url, 'bound')}`);
    // Generous start-up bound: two tsx processes on a loaded machine (the wait is still bounded).
    [a, b] = await Promise.all([spawnGateway(file, 120_000), spawnGateway(file, 120_000)]);
  });
  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await up?.close();
  });

  test('a proof used at one instance is refused at the other (same public URL behind a balancer)', async () => {
    const key = await generateDpopKey('ES256');
    const token = await as.mint({ jkt: key.jkt });
    const publicUrl = 'http://api.hcgw.test/items';
    for (let i = 0; i < 3; i++) {
      const proof = await dpopProof(key, { method: 'GET', url: publicUrl, accessToken: token });
      const headers = { host: 'api.hcgw.test', authorization: `DPoP ${token}`, dpop: proof };
      const [first, second] = i % 2 ? [b, a] : [a, b];
      assert.equal((await rawRequest(`${first.url}/items`, { headers })).status, 200);
      const replay = await rawRequest(`${second.url}/items`, { headers });
      assert.equal(replay.status, 401);
      assert.match(String(replay.headers['www-authenticate']), /error="invalid_dpop_proof"/);
      assert.match(replay.json().detail, /already used/);
    }
  });

  test('senderConstraint: optional still accepts a plain Bearer token without cnf', async () => {
    const res = await rawRequest(`${a.url}/items`, { headers: { authorization: `Bearer ${await as.mint()}` } });
    assert.equal(res.status, 200);
  });
});

describe('mTLS-bound tokens (RFC 8705) on a TLS listener', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let as: Awaited<ReturnType<typeof createIssuer>>;
  const dir = tempDir('hcgw-mtls-');
  const pem = (name: string) => readFileSync(join(dir, name));
  const selfSigned = (name: string, cn: string, san?: string) =>
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, ...(san ? ['-addext', `subjectAltName=${san}`] : []), '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });

  before(async () => {
    selfSigned('server', '127.0.0.1', 'IP:127.0.0.1');
    selfSigned('client-a', 'client-a');
    selfSigned('client-b', 'client-b');
    as = await createIssuer();
    up = await startUpstream();
    const file = join(dir, 'routes.yaml');
    writeFileSync(file, `version: 1
server: { tls: { certFile: server.crt, keyFile: server.key, clientCertificates: request } }
identity:
  issuers:
    - ${as.yaml('bound', 'required')}
${routesYaml(up.url, 'bound')}`);
    gw = await startGateway('', { file });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const call = (token: string, client?: string) =>
    new Promise<{ status: number; challenge?: string }>((resolve, reject) => {
      const req = https.request(
        `${gw.url.replace('http:', 'https:')}/items`,
        { ca: pem('server.crt'), headers: { authorization: `Bearer ${token}` }, agent: false, ...(client ? { cert: pem(`${client}.crt`), key: pem(`${client}.key`) } : {}) },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, challenge: res.headers['www-authenticate'] as string | undefined }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  const thumbprint = (name: string) => createHash('sha256').update(new X509Certificate(pem(`${name}.crt`)).raw).digest('base64url');

  test('the right client certificate is accepted', async () => {
    const token = await as.mint({ 'x5t#S256': thumbprint('client-a') });
    assert.equal((await call(token, 'client-a')).status, 200);
  });

  test('another client certificate, or none, is refused with invalid_token', async () => {
    const token = await as.mint({ 'x5t#S256': thumbprint('client-a') });
    for (const client of ['client-b', undefined]) {
      const res = await call(token, client);
      assert.equal(res.status, 401);
      assert.match(res.challenge ?? '', /error="invalid_token"/);
    }
  });

  test('an unbound token is refused on an issuer with senderConstraint: required, even with a certificate', async () => {
    assert.equal((await call(await as.mint(), 'client-a')).status, 401);
  });
});

describe('issuer rules from the identity review', () => {
  test('an introspection-only issuer without audiences cannot be trusted by a route', async () => {
    const issues = await configIssues(`version: 1
identity:
  issuers:
    - { name: opaque, issuer: "https://as.test", algorithms: [RS256], introspection: { url: "http://127.0.0.1:1/introspect", clientId: c, clientSecret: s } }
upstreams: { up: { url: "http://127.0.0.1:1" } }
routes:
  - { id: r, layer: system, match: { path: /r }, target: { upstream: up, path: /r }, policies: [{ jwt: { issuers: [opaque] } }] }
`);
    assertIssues(issues, [/jwt\.issuers\[0\]: identity issuer "opaque" has no `audiences`/]);
  });

  test('verified claims are deep-frozen: the cached payload cannot be changed by one request for the next', async () => {
    const as = await createIssuer();
    const registry = await createIdentityRegistry([{ name: 'i', issuer: ISSUER, audiences: [AUD], algorithms: ['RS256'], keys: [as.jwk] }]);
    const token = await as.mint({ jkt: 'x' });
    for (let i = 0; i < 2; i++) {
      const { claims } = await verifyJwt(token, [registry.get('i')!], Date.now());
      assert.ok(Object.isFrozen(claims) && Object.isFrozen(claims.cnf) && Object.isFrozen((claims.nested as { list: unknown[] }).list));
      assert.throws(() => ((claims as Record<string, unknown>).scope = 'admin'), TypeError);
      assert.equal(claims.scope, 'erp.read');
    }
  });
});
