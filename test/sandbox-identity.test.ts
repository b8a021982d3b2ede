import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt, generateKeyPair, importPKCS8, SignJWT } from 'jose';
import { dpopProof, generateDpopKey } from '../gateway/lib/dpop-proof.ts';
import type { Sandbox } from '../gateway/sandbox/index.ts';
import type { TestGateway } from './helpers.ts';
import { tempDir } from './helpers.ts';
import { startShippedSandbox } from './shipped-sandbox.ts';

const run = promisify(execFile);
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

describe('sandbox identity: the ERP wants the gateway\'s own token; private_key_jwt and DPoP at the dev IdP', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  before(async () => {
    ({ sb, gw } = await startShippedSandbox());
  });
  after(async () => {
    await gw?.close();
    await sb?.close();
  });

  const devToken = (clientId = 'erp-batch') => sb.idp.mint({ clientId, scopes: ['erp.read'] });

  test('the ERP refuses a call without a token, and a caller token (wrong audience)', async () => {
    const bare = await fetch(`${sb.urls.erp}/items`);
    assert.equal(bare.status, 401);
    const caller = await fetch(`${sb.urls.erp}/items`, { headers: { authorization: `Bearer ${await devToken()}` } });
    assert.equal(caller.status, 401);
    assert.match(caller.headers.get('www-authenticate') ?? '', /invalid_token/);
  });

  test('through the gateway (shipped routes.yaml) the ERP call carries the gateway\'s private_key_jwt token', async () => {
    const before = sb.upstreams.erp.stats().total;
    const res = await fetch(`${gw.url}/system/erp/items`, { headers: { authorization: `Bearer ${await devToken()}` } });
    assert.equal(res.status, 200);
    assert.equal(sb.upstreams.erp.stats().total - before, 1);
  });

  test('dev IdP: private_key_jwt client assertions — valid accepted, wrong key / replay / wrong audience refused', async () => {
    const pem = readFileSync('gateway/sandbox/keys/hcgw-gateway.dev.pem', 'utf8');
    const key = await importPKCS8(pem, 'ES256');
    const { privateKey: stranger } = await generateKeyPair('ES256', { extractable: true });
    const assertion = (k = key, aud = sb.idp.tokenEndpoint, jti = crypto.randomUUID()) =>
      new SignJWT({ jti }).setProtectedHeader({ alg: 'ES256' }).setIssuer('hcgw-gateway').setSubject('hcgw-gateway').setAudience(aud).setIssuedAt().setExpirationTime('1m').sign(k);
    const ask = (a: string, headers: Record<string, string> = {}) =>
      fetch(sb.idp.tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: a, scope: 'erp.read' }) });
    const good = await assertion();
    const ok = await ask(good);
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as { access_token: string; token_type: string };
    assert.equal(body.token_type, 'Bearer');
    assert.equal(decodeJwt(body.access_token).aud, 'hcgw-erp');
    assert.equal((await ask(good)).status, 401, 'replayed assertion');
    assert.equal((await ask(await assertion(stranger as never))).status, 401, 'signed by another key');
    assert.equal((await ask(await assertion(key, 'https://elsewhere.test/token'))).status, 401, 'other audience');
    // DPoP at the token endpoint: the token is bound to the proof's key.
    const dpopKey = await generateDpopKey();
    const bound = await ask(await assertion(), { dpop: await dpopProof(dpopKey, { method: 'POST', url: sb.idp.tokenEndpoint }) });
    assert.equal(bound.status, 200);
    const b = (await bound.json()) as { access_token: string; token_type: string };
    assert.equal(b.token_type, 'DPoP');
    assert.deepEqual(decodeJwt(b.access_token).cnf, { jkt: dpopKey.jkt });
    const wrongHtu = await ask(await assertion(), { dpop: await dpopProof(dpopKey, { method: 'POST', url: `${sb.idp.origin}/other` }) });
    assert.equal(wrongHtu.status, 400);
  });

  test('`hcgw token --dpop` and `hcgw dpop`: a bound token and proofs that the gateway accepts (and a replay it refuses)', async () => {
    const dir = tempDir('hcgw-cli-dpop-');
    const keyFile = join(dir, 'dpop.json');
    const minted = await run(process.execPath, ['bin/hcgw.js', 'token', '--client', 'erp-batch', '--scope', 'erp.read', '--idp', sb.idp.origin, '--dpop', '--dpop-key', keyFile], { timeout: 30_000 });
    const token = minted.stdout.trim();
    assert.match(minted.stderr, /Authorization: DPoP/);
    assert.ok((decodeJwt(token).cnf as { jkt?: string })?.jkt);
    const url = `${gw.url}/system/erp/items`;
    const proof = (await run(process.execPath, ['bin/hcgw.js', 'dpop', '--key', keyFile, '--token', token, 'GET', url], { timeout: 30_000 })).stdout.trim();
    const ok = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    assert.equal(ok.status, 200);
    const replay = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof } });
    assert.equal(replay.status, 401);
    const asBearer = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(asBearer.status, 401);
  });
});
