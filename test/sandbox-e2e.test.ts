import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';
import { problem, startGateway, writeConfig, type TestGateway } from './helpers.ts';

/**
 * The shipped routes.yaml, end to end: the same file `npm start` runs, with the sandbox's fixed ports
 * swapped for ephemeral ones so the test never collides with a running sandbox.
 */
export async function startShippedSandbox(): Promise<{ sb: Sandbox; gw: TestGateway }> {
  const sb = await startSandbox({ ports: EPHEMERAL_PORTS, erpRequiresGatewayToken: true });
  const origin = (u: string) => new URL(u).origin;
  const yaml = readFileSync('routes.yaml', 'utf8')
    .replaceAll('http://127.0.0.1:9100', origin(sb.urls.idp))
    .replaceAll('http://127.0.0.1:9101', origin(sb.urls.ehr))
    .replaceAll('http://127.0.0.1:9102', origin(sb.urls.billing))
    .replaceAll('http://127.0.0.1:9103', origin(sb.urls.erp))
    .replace('admin: { port: 9901 }', 'admin: { port: 0 }');
  // The config references schema files relative to itself: give the temp copy the repository's schemas.
  const file = writeConfig(yaml);
  symlinkSync(resolve('schemas'), join(dirname(file), 'schemas'));
  // …and the sandbox key the gateway signs its ERP client assertions with (upstreams.erp.auth).
  symlinkSync(resolve('gateway'), join(dirname(file), 'gateway'));
  const gw = await startGateway(yaml, { file });
  return { sb, gw };
}

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
