import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadConfigFile } from '../gateway/config/load.ts';
import { TestWorld } from '../gateway/tooling/world.ts';
import { DECISIONS_HEADER } from '../gateway/tooling/debug-decisions.ts';
import { assertIssues, configIssues, readAuditRecords, shippedConfigCopy, waitFor } from './helpers.ts';

/** The sandbox routes.yaml with one change to its server section, next to the schemas it references. */
function sandboxWith(server: string): string {
  return shippedConfigCopy((yaml) => yaml.replace('  host: 127.0.0.1\n', `  host: 127.0.0.1\n${server}\n`));
}

async function auditRecord(file: string, requestId: string): Promise<any> {
  let found: unknown;
  const read = () => readAuditRecords(file).find((r) => r.requestId === requestId);
  await waitFor(() => Boolean((found = read())), 3000, `audit record ${requestId}`);
  return found;
}

describe('decision traces: audit records and the opt-in debug header', () => {
  let world: TestWorld;
  before(async () => {
    const { config } = await loadConfigFile('routes.yaml');
    world = await TestWorld.create({ upstreams: config.upstreams, sandbox: true });
  });
  after(() => world.close());

  const issuer = async (file: string) => (await loadConfigFile(file)).config.identity.issuers[0];

  test('every audit record carries the trace in order: each policy that ran, its outcome and reason code', async () => {
    const file = sandboxWith('');
    const { gw, url, auditFile } = await world.gateway(file);
    try {
      world.prepare(undefined, dirname(file));
      const token = await world.issuer.token({ issuer: 'sandbox-idp', client: 'clinician-app', scopes: ['user/*.rs'], token: 'valid' }, await issuer(file));
      const ok = await fetch(`${url}/system/ehr/Observation?patient=p2`, { headers: { authorization: `Bearer ${token}`, 'x-purpose-of-use': 'TREAT' } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get(DECISIONS_HEADER), null, 'no header unless server.debugDecisions');
      const r = await auditRecord(auditFile, ok.headers.get('x-request-id')!);
      assert.deepEqual(r.policy.decisions.map((d: { policy: string; outcome: string; reason?: string }) => `${d.policy}=${d.outcome}${d.reason ? `(${d.reason})` : ''}`), [
        'jwt=allow', 'scopes=allow', 'rate-limit=allow', 'lane=allow', 'minimize=allow', 'consent=allow', 'consent=modify(consent-partial)', 'minimize=modify(fields-minimized)',
      ]);
      // Codes and counts only: no patient id, scope, token or field value in the trace.
      const text = JSON.stringify(r.policy.decisions);
      for (const secret of ['p2', 'user/*.rs', token.slice(0, 20), 'PHQ', 'depression']) assert.ok(!text.includes(secret), `${secret} in ${text}`);

      const denied = await fetch(`${url}/system/ehr/Observation?patient=p2`, { headers: { authorization: `Bearer ${token}`, 'x-purpose-of-use': 'HRESCH' } });
      assert.equal(denied.status, 403);
      const d = await auditRecord(auditFile, denied.headers.get('x-request-id')!);
      assert.deepEqual(d.policy.decisions.at(-1), { policy: 'minimize', outcome: 'deny', reason: 'purpose-not-allowed' });
      assert.equal(d.policy.deniedBy, 'minimize');
    } finally {
      await gw.close(1000);
    }
  });

  test('server.debugDecisions: true sends the trace on allowed, filtered and refused answers', async () => {
    const file = sandboxWith('  debugDecisions: true');
    const { gw, url } = await world.gateway(file);
    try {
      world.prepare(undefined, dirname(file));
      const none = await fetch(`${url}/system/ehr/Patient/p1`);
      assert.equal(none.status, 401);
      assert.equal(none.headers.get(DECISIONS_HEADER), 'jwt=deny(missing-token)');
      const token = await world.issuer.token({ issuer: 'sandbox-idp', client: 'portal-app', scopes: ['patient/*.rs'], patient: 'p1', token: 'valid' }, await issuer(file));
      const own = await fetch(`${url}/portal/fhir/Observation`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(own.status, 200);
      assert.equal(own.headers.get(DECISIONS_HEADER), 'jwt=allow, scopes=allow, patient-compartment=modify(patient-param-added), patient-compartment=allow');
      const foreign = await fetch(`${url}/portal/fhir/Observation/obs-p2-hr`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(foreign.status, 404);
      assert.match(foreign.headers.get(DECISIONS_HEADER) ?? '', /patient-compartment=deny\(other-patient-resource\)$/);
      const scope = await fetch(`${url}/system/ehr/Patient/p1`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(scope.headers.get(DECISIONS_HEADER), 'jwt=allow, scopes=deny(smart-scope-missing)');
    } finally {
      await gw.close(1000);
    }
  });

  test('the config compiler refuses debugDecisions on a listener that is not loopback', async () => {
    for (const host of ['0.0.0.0', '10.1.2.3', '::', 'gateway.example']) {
      const yaml = `version: 1\nserver: { host: "${host}", debugDecisions: true }\nroutes: []\n`;
      assertIssues(await configIssues(yaml), [/^server\.debugDecisions: is allowed only when server\.host is a loopback address/]);
    }
    for (const host of ['127.0.0.1', '::1', 'localhost']) {
      assert.deepEqual(await configIssues(`version: 1\nserver: { host: "${host}", debugDecisions: true }\nroutes: []\n`), []);
    }
  });
});
