import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';

let sb: Sandbox;
before(async () => { sb = await startSandbox({ ports: EPHEMERAL_PORTS }); });
after(async () => { await sb?.close(); });
beforeEach(() => sb.reset());

async function call(url: string, init: RequestInit & { json?: unknown } = {}) {
  const { json, ...rest } = init;
  const res = await fetch(url, json === undefined ? rest : { ...rest, method: rest.method ?? 'POST', body: JSON.stringify(json), headers: { 'content-type': 'application/json', ...rest.headers } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}
const form = (body: Record<string, string>, headers: Record<string, string> = {}) =>
  ({ method: 'POST', body: new URLSearchParams(body).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });
const basic = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });

test('all servers bind loopback and the EHR url includes /fhir', () => {
  for (const u of Object.values(sb.urls)) assert.match(u, /^http:\/\/127\.0\.0\.1:\d+/);
  assert.match(sb.urls.ehr, /\/fhir$/);
});

test('EHR reads a synthetic Patient as FHIR JSON', async () => {
  const r = await call(`${sb.urls.ehr}/Patient/p1`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type')!, /^application\/fhir\+json/);
  assert.equal(r.body.resourceType, 'Patient');
  assert.equal(r.body.name[0].family, 'Testerly-Zyx');
  const systems = r.body.identifier.map((i: { system: string }) => i.system);
  assert.deepEqual(systems, ['urn:oid:2.16.840.1.113883.19.5', 'http://hl7.org/fhir/sid/us-ssn']);
  assert.ok(r.headers.get('etag'));
});

test('EHR search returns a searchset Bundle filtered by patient, category, _id and _count', async () => {
  const r = await call(`${sb.urls.ehr}/Observation?patient=p2`);
  assert.equal(r.status, 200);
  assert.equal(r.body.resourceType, 'Bundle');
  assert.equal(r.body.type, 'searchset');
  assert.equal(r.body.total, r.body.entry.length);
  assert.ok(r.body.total >= 3);
  for (const e of r.body.entry) {
    assert.equal(e.resource.subject.reference, 'Patient/p2');
    assert.equal(e.fullUrl, `${sb.urls.ehr}/Observation/${e.resource.id}`);
  }
  const psy = r.body.entry.filter((e: any) => e.resource.meta?.security?.some((s: any) => s.code === 'PSY'));
  assert.ok(psy.length >= 2, 'p2 has PSY-labelled observations');

  const bySubject = await call(`${sb.urls.ehr}/Observation?subject=Patient/p2`);
  assert.deepEqual(bySubject.body.entry.map((e: any) => e.resource.id), r.body.entry.map((e: any) => e.resource.id));

  const labs = await call(`${sb.urls.ehr}/Observation?patient=p3&category=laboratory`);
  assert.ok(labs.body.total >= 2);
  assert.ok(labs.body.entry.every((e: any) => e.resource.category[0].coding[0].code === 'laboratory'));

  const ids = await call(`${sb.urls.ehr}/Patient?_id=p1,p3`);
  assert.deepEqual(ids.body.entry.map((e: any) => e.resource.id), ['p1', 'p3']);

  const counted = await call(`${sb.urls.ehr}/Observation?_count=1`);
  assert.equal(counted.body.entry.length, 1);
  assert.ok(counted.body.total > 1);

  const all = await call(`${sb.urls.ehr}/Patient`);
  assert.equal(all.body.total, 5);
});

test('EHR holds the Consent resources the consent policy relies on', async () => {
  const p2 = await call(`${sb.urls.ehr}/Consent?patient=p2`);
  assert.equal(p2.body.total, 1);
  const c = p2.body.entry[0].resource;
  assert.equal(c.status, 'active');
  assert.equal(c.patient.reference, 'Patient/p2');
  assert.equal(c.provision.type, 'permit');
  assert.equal(c.provision.provision[0].type, 'deny');
  assert.equal(c.provision.provision[0].securityLabel[0].code, 'PSY');

  const p3 = (await call(`${sb.urls.ehr}/Consent?patient=Patient/p3`)).body.entry[0].resource;
  assert.equal(p3.provision.provision[0].purpose[0].code, 'HPAYMT');

  const p1 = (await call(`${sb.urls.ehr}/Consent?patient=p1`)).body.entry[0].resource;
  assert.equal(p1.status, 'inactive');
});

test('EHR create, update, and read back; reset restores the seed', async () => {
  const obs = { resourceType: 'Observation', status: 'final', code: { text: 'test' }, subject: { reference: 'Patient/p1' } };
  const created = await call(`${sb.urls.ehr}/Observation`, { json: obs });
  assert.equal(created.status, 201);
  const id = created.body.id;
  assert.ok(id);
  assert.equal(created.headers.get('location'), `${sb.urls.ehr}/Observation/${id}/_history/1`);

  const updated = await call(`${sb.urls.ehr}/Observation/${id}`, { method: 'PUT', json: { ...created.body, status: 'amended' } });
  assert.equal(updated.status, 200);
  assert.equal(updated.body.meta.versionId, '2');
  assert.equal((await call(`${sb.urls.ehr}/Observation/${id}`)).body.status, 'amended');

  assert.equal((await call(`${sb.urls.ehr}/Observation/${id}`, { method: 'PUT', json: { ...obs, id: 'other' } })).status, 400);
  assert.equal((await call(`${sb.urls.ehr}/Observation`, { json: { resourceType: 'Patient' } })).status, 400);

  sb.reset();
  assert.equal((await call(`${sb.urls.ehr}/Observation/${id}`)).status, 404);
});

test('EHR errors are OperationOutcomes and bad input never crashes', async () => {
  for (const [url, init, status] of [
    [`${sb.urls.ehr}/Patient/nope`, {}, 404],
    [`${sb.urls.ehr}/Unknown/1`, {}, 404],
    [`${sb.urls.ehr}/Patient`, { method: 'POST', body: '{not json', headers: { 'content-type': 'application/fhir+json' } }, 400],
    [`${sb.urls.ehr}/Patient/%E0`, {}, 400],
    [`${sb.urls.ehr}/Observation?_count=-1`, {}, 400],
    [`${sb.urls.ehr}/Patient/p1`, { method: 'DELETE' }, 405],
  ] as const) {
    const r = await call(url, init as RequestInit);
    assert.equal(r.status, status, url);
    assert.equal(r.body.resourceType, 'OperationOutcome');
  }
  assert.equal((await call(`${sb.urls.ehr}/Patient/p1`)).status, 200);
});

test('echo endpoints report method, url, headers and body', async () => {
  const r = await call(`${sb.urls.ehr}/_echo/Patient/p1?x=1`, {
    method: 'PUT', json: { a: 1 }, headers: { 'x-request-id': 'req-123', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  });
  assert.equal(r.status, 200);
  assert.equal(r.body.method, 'PUT');
  assert.equal(r.body.url, '/fhir/_echo/Patient/p1?x=1');
  assert.equal(r.body.headers['x-request-id'], 'req-123');
  assert.match(r.body.headers.traceparent, /^00-0af7/);
  assert.deepEqual(r.body.body, { a: 1 });
  for (const base of [sb.urls.billing, sb.urls.erp]) {
    const e = await call(`${base}/_echo`);
    assert.equal(e.body.method, 'GET');
    assert.equal(e.body.url, '/_echo');
  }
});

test('billing: claims carry clinical notes; POST /charges creates and stats count requests', async () => {
  const claims = await call(`${sb.urls.billing}/claims?patient=p2`);
  assert.equal(claims.status, 200);
  assert.ok(claims.body.total >= 2);
  const claim = claims.body.data[0];
  assert.ok(claim.clinicalNotes && claim.total.currency === 'USD' && claim.items[0].code.code);
  assert.equal((await call(`${sb.urls.billing}/claims/${claim.id}`)).body.id, claim.id);
  assert.equal((await call(`${sb.urls.billing}/claims?encounter=Encounter/e-p1-1`)).body.total, 1);

  const charge = await call(`${sb.urls.billing}/charges`, { json: { encounter: 'e-p1-2', code: '36415', amount: 12.5 } });
  assert.equal(charge.status, 201);
  assert.equal(charge.body.patient, 'Patient/p1', 'patient derived from the encounter');
  const list = await call(`${sb.urls.billing}/charges?encounter=e-p1-2`);
  assert.deepEqual(list.body.data.map((c: { id: string }) => c.id), [charge.body.id]);
  assert.equal((await call(`${sb.urls.billing}/charges`, { method: 'POST', body: '{oops', headers: { 'content-type': 'application/json' } })).status, 400);
  assert.equal((await call(`${sb.urls.billing}/charges`, { json: { encounter: 'e-p1-2' } })).status, 400);

  const bal = await call(`${sb.urls.billing}/accounts/p1/balance`);
  assert.equal(bal.body.balance.currency, 'USD');
  assert.ok((await call(`${sb.urls.billing}/payments?patient=p1`)).body.total >= 1);
  assert.equal((await call(`${sb.urls.billing}/nope`)).status, 404);

  const stats = await call(`${sb.urls.billing}/_sandbox/stats`);
  assert.equal(stats.body.requests['POST /charges'], 3);
  assert.equal(stats.body.requests['GET /claims'], 2);
  assert.equal(stats.body.total, sb.upstreams.billing.stats().total);
  assert.equal((await call(`${sb.urls.billing}/_sandbox/reset`, { method: 'POST' })).status, 204);
  assert.equal(sb.upstreams.billing.stats().total, 0);
  assert.equal((await call(`${sb.urls.billing}/charges?encounter=e-p1-2`)).body.total, 0);
});

test('ERP: inventory decrement conflicts and encounter cost centers', async () => {
  const ok = await call(`${sb.urls.erp}/inventory/itm-104/decrement`, { json: { quantity: 1 } });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.onHand, 1);
  const conflict = await call(`${sb.urls.erp}/inventory/itm-104/decrement`, { json: { quantity: 2 } });
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error, 'insufficient_stock');
  assert.equal((await call(`${sb.urls.erp}/inventory/itm-999/decrement`, { json: { quantity: 1 } })).status, 404);

  const cc = await call(`${sb.urls.erp}/cost-centers?encounter=e-p2-2`);
  assert.equal(cc.body.data[0].id, 'cc-psych');
  assert.equal((await call(`${sb.urls.erp}/cost-centers/cc-lab`)).body.organization, 'Organization/org-lab');
  const posting = await call(`${sb.urls.erp}/postings`, { json: { encounter: 'e-p1-1', amount: 42 } });
  assert.equal(posting.status, 201);
  assert.equal(posting.body.costCenter, 'cc-cardio');
  const po = await call(`${sb.urls.erp}/purchase-orders`, { json: { lines: [{ itemId: 'itm-101', quantity: 4 }] } });
  assert.equal(po.status, 201);
  assert.equal(po.body.total.value, 30);
  assert.equal((await call(`${sb.urls.erp}/purchase-orders`)).body.total, 2);
});

test('faults: delay, status with count, path/method filters, socket reset, clearing', async () => {
  const billing = sb.urls.billing;
  assert.equal((await call(`${billing}/_sandbox/faults`, { json: { delayMs: 150, count: 1 } })).status, 204);
  let t = Date.now();
  assert.equal((await call(`${billing}/claims`)).status, 200);
  assert.ok(Date.now() - t >= 140, 'first request delayed');
  t = Date.now();
  await call(`${billing}/claims`);
  assert.ok(Date.now() - t < 140, 'count exhausted');

  await call(`${billing}/_sandbox/faults`, { json: { status: 503, count: 2, path: '/claims', method: 'get' } });
  assert.equal((await call(`${billing}/charges`)).status, 200, 'other path unaffected');
  assert.equal((await call(`${billing}/claims`)).status, 503);
  assert.equal((await call(`${billing}/claims/clm-p1-1`)).status, 503, 'path is a prefix');
  assert.equal((await call(`${billing}/claims`)).status, 200);
  assert.equal(sb.upstreams.billing.stats().requests['GET /claims'], 4, 'faulted requests are counted');

  sb.upstreams.ehr.setFault({ reset: true, path: '/Patient' });
  await assert.rejects(fetch(`${sb.urls.ehr}/Patient/p1`).then((r) => r.text()));
  assert.equal((await call(`${sb.urls.ehr}/Observation/obs-p1-hr`)).status, 200);
  assert.equal((await call(`${sb.urls.ehr}/_sandbox/faults`, { method: 'DELETE' })).status, 204);
  assert.equal((await call(`${sb.urls.ehr}/Patient/p1`)).status, 200);

  sb.upstreams.erp.setFault({ status: 500 });
  assert.equal((await call(`${sb.urls.erp}/items`)).status, 500);
  assert.equal((await call(`${sb.urls.erp}/_sandbox/stats`)).status, 200, '/_sandbox is never faulted');
  sb.upstreams.erp.clearFaults();
  assert.equal((await call(`${sb.urls.erp}/items`)).status, 200);

  assert.equal((await call(`${billing}/_sandbox/faults`, { json: { delayMs: 'slow' } })).status, 400);
});

test('IdP serves a JWKS and minted tokens verify with jose', async () => {
  const jwks = await call(sb.idp.jwksUri);
  assert.equal(jwks.status, 200);
  assert.equal(jwks.headers.get('cache-control'), 'public, max-age=300');
  assert.equal(jwks.body.keys[0].kid, sb.idp.kid);
  assert.equal(jwks.body.keys[0].d, undefined, 'no private material');

  const oidc = await call(`${sb.urls.idp}/.well-known/openid-configuration`);
  assert.equal(oidc.body.issuer, sb.idp.issuer);
  assert.equal(oidc.body.jwks_uri, sb.idp.jwksUri);

  const token = await sb.idp.mint({ clientId: 'portal-app', scopes: ['patient/Observation.rs'], patient: 'p1', fhirUser: 'Patient/p1' });
  const { payload, protectedHeader } = await jwtVerify(token, createRemoteJWKSet(new URL(sb.idp.jwksUri)), { issuer: sb.idp.issuer, audience: 'hcgw-sandbox' });
  assert.equal(protectedHeader.alg, 'RS256');
  assert.equal(payload.client_id, 'portal-app');
  assert.equal(payload.scope, 'patient/Observation.rs');
  assert.equal(payload.patient, 'p1');
  assert.equal(payload.fhirUser, 'Patient/p1');
  assert.ok(payload.jti && payload.exp! > payload.iat!);

  const dev = await call(`${sb.urls.idp}/dev/token`, { json: { subject: 'dr-who', scopes: 'user/*.rs', expiresIn: 60 } });
  assert.equal(dev.status, 200);
  assert.equal(dev.body.expires_in, 60);
  const v = await jwtVerify(dev.body.access_token, createRemoteJWKSet(new URL(sb.idp.jwksUri)), { issuer: sb.idp.issuer, audience: sb.idp.audience });
  assert.equal(v.payload.sub, 'dr-who');
});

test('IdP client_credentials: Basic and body auth, scope intersection, bad client', async () => {
  const r = await call(`${sb.urls.idp}/token`, form({ grant_type: 'client_credentials', scope: 'billing.read admin.all' }, basic('partner-billing', 'partner-billing-secret')));
  assert.equal(r.status, 200);
  assert.equal(r.body.token_type, 'Bearer');
  assert.equal(r.body.scope, 'billing.read');
  assert.ok(r.body.expires_in > 0);
  const { payload } = await jwtVerify(r.body.access_token, createRemoteJWKSet(new URL(sb.idp.jwksUri)), { issuer: sb.idp.issuer, audience: sb.idp.audience });
  assert.equal(payload.client_id, 'partner-billing');

  const body = await call(`${sb.urls.idp}/token`, form({ grant_type: 'client_credentials', client_id: 'clinician-app', client_secret: 'clinician-app-secret', scope: 'user/Observation.rs' }));
  assert.equal(body.status, 200);
  assert.equal(body.body.scope, 'user/Observation.rs', 'wildcard scopes allow a specific resource type');

  const bad = await call(`${sb.urls.idp}/token`, form({ grant_type: 'client_credentials' }, basic('partner-billing', 'wrong')));
  assert.equal(bad.status, 401);
  assert.equal(bad.body.error, 'invalid_client');
  assert.equal((await call(`${sb.urls.idp}/token`, form({ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'x' }))).status, 401);
  assert.equal((await call(`${sb.urls.idp}/token`, form({ grant_type: 'password' }, basic('erp-batch', 'erp-batch-secret')))).body.error, 'unsupported_grant_type');
});

test('IdP rotation changes the kid and drops the old key unless keepOld', async () => {
  const oldKid = sb.idp.kid;
  const oldToken = await sb.idp.mint();
  const kid = await sb.idp.rotate({ keepOld: true });
  assert.notEqual(kid, oldKid);
  assert.equal(sb.idp.kid, kid);
  assert.equal(decodeProtectedHeader(await sb.idp.mint()).kid, kid);
  let kids = (await call(sb.idp.jwksUri)).body.keys.map((k: { kid: string }) => k.kid);
  assert.deepEqual(kids, [oldKid, kid]);
  await jwtVerify(oldToken, createRemoteJWKSet(new URL(sb.idp.jwksUri)), { issuer: sb.idp.issuer });

  const newest = await sb.idp.rotate();
  kids = (await call(sb.idp.jwksUri)).body.keys.map((k: { kid: string }) => k.kid);
  assert.deepEqual(kids, [newest]);
  await assert.rejects(jwtVerify(oldToken, createRemoteJWKSet(new URL(sb.idp.jwksUri)), { issuer: sb.idp.issuer }));
  assert.match(sb.idp.publicKeyPem(), /^-----BEGIN PUBLIC KEY-----/);
});

test('a single upstream can be started on its own', async () => {
  const { startErp } = await import('../gateway/sandbox/index.ts');
  const erp = await startErp({ port: 0 });
  try {
    assert.equal((await call(`${erp.url}/items/itm-100`)).body.sku, 'SYN-SAL-1L');
  } finally {
    await erp.close();
  }
});
