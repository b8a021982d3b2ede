import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Sandbox } from '../gateway/sandbox/index.ts';
import { startShippedSandbox } from './shipped-sandbox.ts';
import { problem, startGateway, writeConfig, type TestGateway } from './helpers.ts';

describe('sandbox routes.yaml end to end (the README flows)', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  before(async () => {
    ({ sb, gw } = await startShippedSandbox());
  });
  after(async () => {
    await gw.close();
    await sb.close();
  });

  test('a token from the dev IdP reads a FHIR Patient through a system route', async () => {
    const token = await sb.idp.mint({ clientId: 'clinician-app', subject: 'pr-1', scopes: ['user/*.rs'] });
    const res = await fetch(`${gw.url}/system/ehr/Patient/p1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    const patient = (await res.json()) as { resourceType: string; id: string };
    assert.equal(patient.resourceType, 'Patient');
    assert.equal(patient.id, 'p1');
  });

  test("the staff EHR routes take the README's SMART user scopes: create needs Observation.c, a portal token is refused", async () => {
    const readOnly = await sb.idp.mint({ clientId: 'clinician-app', subject: 'pr-1', scopes: ['user/*.rs'] });
    const writer = await sb.idp.mint({ clientId: 'clinician-app', subject: 'pr-1', scopes: ['user/*.rs', 'user/Observation.c'] });
    const portal = await sb.idp.mint({ clientId: 'portal-app', subject: 'p1', patient: 'p1', fhirUser: 'Patient/p1', scopes: ['patient/*.rs', 'billing.read'] });
    const create = (token: string) =>
      fetch(`${gw.url}/system/ehr/Observation`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: 'heart rate' }, subject: { reference: 'Patient/p1' } }),
      });
    const refused = await create(readOnly);
    assert.equal(refused.status, 403);
    assert.equal((await problem(refused)).type, 'https://hcgw.dev/problems/insufficient-scope');
    assert.equal((await create(writer)).status, 201);

    const search = await fetch(`${gw.url}/system/ehr/Observation?patient=p2`, { headers: { authorization: `Bearer ${portal}`, 'x-purpose-of-use': 'TREAT' } });
    assert.equal(search.status, 403);
    assert.equal((await problem(search)).type, 'https://hcgw.dev/problems/insufficient-scope');

    const patient = (await (await fetch(`${gw.url}/system/ehr/Patient/p1`, { headers: { authorization: `Bearer ${readOnly}` } })).json()) as Record<string, unknown>;
    assert.ok(patient.name && !('text' in patient), 'the clinical profile: name kept, the narrative removed');
  });

  test('without a token the same call gets 401 problem+json', async () => {
    const res = await fetch(`${gw.url}/system/ehr/Patient/p1`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    const p = await problem(res);
    assert.equal(p.status, 401);
  });

  test('the charging process route refuses a POST without an Idempotency-Key, or with an empty one, before anything is charged', async () => {
    const token = await sb.idp.mint({ clientId: 'erp-integration', subject: 'svc', scopes: ['erp.write', 'billing.write'] });
    const before = await (await fetch(`${sb.urls.billing}/charges`)).text().catch(() => '');
    for (const key of [undefined, '']) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      if (key !== undefined) headers['idempotency-key'] = key;
      const res = await fetch(`${gw.url}/process/encounters/e-p1-1/supply-usage`, { method: 'POST', headers, body: JSON.stringify({ itemId: 'itm-100', quantity: 1, code: 'SUP-SAL', amount: 1.85 }) });
      assert.equal(res.status, 400, `key ${JSON.stringify(key)}`);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/bad-request');
    }
    assert.equal(await (await fetch(`${sb.urls.billing}/charges`)).text().catch(() => ''), before, 'no charge was posted');
  });

  test('unknown route → 404 problem+json', async () => {
    const res = await fetch(`${gw.url}/no/such/route`);
    assert.equal(res.status, 404);
    assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/route-not-found');
  });
});
