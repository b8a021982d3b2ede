import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyAuditFiles } from '../gateway/audit/verify.ts';
import { configIssues, readAuditRecords, startSandboxGateway, waitFor, type SandboxGateway, tempDir } from './helpers.ts';

const HASH_KEY = randomBytes(32).toString('base64url');
process.env.HCGW_TEST_AUDIT_KEY = HASH_KEY;
const hmac = (v: string) => createHmac('sha256', HASH_KEY).update(v).digest('base64url');

/** A plugin standing in for the consent / purpose-of-use policies: it fills the slots the audit records. */
const FACTS_PLUGIN = `export default {
  name: 'audit-facts',
  configSchema: { type: 'object', additionalProperties: false },
  create() {
    return {
      onRequest(ex) {
        ex.purposeOfUse = 'TREAT';
        ex.decisions.push({ policy: 'audit-facts', outcome: 'allow', reason: 'test-rule' });
        ex.consent = { consentIds: ['consent-1'], decision: 'permit' };
      },
    };
  },
};
`;

function auditYaml(dir: string, section = 'flushIntervalMs: 10'): string {
  return `plugins: ["${join(dir, 'audit-facts.mjs')}"]
audit:
  hashKey: \${env:HCGW_TEST_AUDIT_KEY}
  source: gw-test-1
  ${section}
  sinks:
    - { kind: file, path: "${join(dir, 'audit.log')}" }
routes:
  - id: ehr-patient-read
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: ehr, path: /Patient/:id }
    policies:
      - audit: {}
      - jwt: { issuers: [sandbox-idp] }
      - audit-facts: {}
  - id: ehr-observation-search
    layer: system
    match: { methods: [GET], path: /system/ehr/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - audit: {}
  - id: ehr-observation-create
    layer: system
    match: { methods: [POST], path: /system/ehr/Observation }
    fhir: { resourceType: Observation, interaction: create }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - audit: {}
`;
}

describe('audit policy: one record per request, no PHI', () => {
  let env: SandboxGateway;
  let dir: string;
  let auditFile: string;
  const tokens: string[] = [];
  let clinician: string;
  let portal: string;

  /** The record of one request, once the trail has flushed it. */
  async function recordOf(res: Response): Promise<Record<string, any>> {
    await res.arrayBuffer();
    const id = res.headers.get('x-request-id');
    let rec: Record<string, any> | undefined;
    await waitFor(() => Boolean((rec = readAuditRecords(auditFile).find((r) => r.requestId === id))), 5000, `audit record of ${id}`);
    return rec!;
  }

  before(async () => {
    dir = tempDir('hcgw-audit-policy-');
    auditFile = join(dir, 'audit.log');
    writeFileSync(join(dir, 'audit-facts.mjs'), FACTS_PLUGIN);
    env = await startSandboxGateway(() => auditYaml(dir));
    clinician = await env.token({ clientId: 'clinician-app', subject: 'pr-1', scopes: ['user/*.rs'], fhirUser: 'Practitioner/pr-1' });
    portal = await env.token({ clientId: 'portal-app', subject: 'p1', scopes: ['patient/*.rs'], patient: 'p1', fhirUser: 'Patient/p1' });
    tokens.push(clinician, portal);
  });
  after(async () => {
    await env.close();
  });

  test('an allowed read: action, outcome, agent, entity, purpose, decisions, upstream, correlation', async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await env.call('/system/ehr/Patient/p1', clinician, { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` } });
    assert.equal(res.status, 200);
    const r = await recordOf(res);
    assert.equal(r.format, 2, 'written as a FHIR AuditEvent (line format 2)');
    assert.equal(r.resource.resourceType, 'AuditEvent');
    assert.equal(r.action, 'R');
    assert.equal(r.subtype, 'read');
    assert.deepEqual(r.outcome, { code: '0', status: 200 });
    assert.equal(r.agent.issuer, env.sb.idp.issuer);
    assert.equal(r.agent.subject, 'pr-1', 'staff subjects are not PHI');
    assert.equal(r.agent.clientId, 'clinician-app');
    assert.equal(r.agent.fhirUser, 'Practitioner/pr-1');
    assert.equal(r.agent.patientContext, false);
    assert.deepEqual(r.source, { observer: 'gw-test-1', type: 'gateway' });
    assert.deepEqual(r.entity, { route: 'ehr-patient-read', layer: 'system', resourceType: 'Patient', patientHashes: [hmac('p1')] });
    assert.equal(r.purposeOfUse, 'TREAT');
    assert.deepEqual(r.policy, { decisions: [{ policy: 'jwt', outcome: 'allow' }, { policy: 'audit-facts', outcome: 'allow', reason: 'test-rule' }], consent: { consentIds: ['consent-1'], decision: 'permit' } });
    assert.equal(r.upstream.name, 'ehr');
    assert.equal(r.upstream.status, 200);
    assert.equal(typeof r.upstream.latencyMs, 'number');
    assert.ok(r.latencyMs >= r.upstream.latencyMs);
    assert.equal(r.requestId, res.headers.get('x-request-id'));
    assert.match(r.traceparent, new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`), 'the caller’s trace continues');
    assert.ok(Date.parse(r.recorded) >= Date.parse(r.period.start));
  });

  test('a request refused by an earlier policy is recorded with who refused it and why', async () => {
    const res = await fetch(`${env.gw.url}/system/ehr/Observation?patient=p2`);
    assert.equal(res.status, 401);
    const r = await recordOf(res);
    assert.deepEqual(r.outcome, { code: '4', status: 401, error: 'unauthorized', reason: 'missing-token' });
    assert.equal(r.policy.deniedBy, 'jwt');
    assert.equal(r.action, 'E', 'a FHIR search is recorded as Execute');
    assert.equal(r.agent.subject, undefined);
    assert.equal(r.upstream, undefined, 'the upstream was never called');
    assert.deepEqual(r.entity.patientHashes, [hmac('p2')], 'the patient searched for, hashed');
  });

  test('a forged token is refused and recorded without its text', async () => {
    const [h, p, s] = portal.split('.');
    const forged = `${h}.${p}.${s.slice(0, -4)}AAAA`;
    tokens.push(forged);
    const res = await env.call('/system/ehr/Patient/p3', forged);
    assert.equal(res.status, 401);
    const r = await recordOf(res);
    assert.equal(r.outcome.error, 'invalid-token');
    assert.equal(r.policy.deniedBy, 'jwt');
    assert.equal(r.agent.subject, undefined);
  });

  test('patient context: the subject, fhirUser and address are hashed; the search is recorded without its query', async () => {
    const res = await env.call('/system/ehr/Observation?patient=p1&code=718-7', portal);
    assert.equal(res.status, 200);
    const r = await recordOf(res);
    assert.equal(r.agent.patientContext, true);
    assert.equal(r.agent.subject, undefined);
    assert.equal(r.agent.subjectHash, hmac('p1'));
    assert.equal(r.agent.fhirUser, undefined);
    assert.equal(r.agent.fhirUserHash, hmac('Patient/p1'));
    assert.equal(r.agent.address, undefined);
    assert.match(r.agent.addressHash, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(r.agent.clientId, 'portal-app', 'an app id is not PHI');
    assert.deepEqual(r.entity.patientHashes, [hmac('p1')]);
    const line = JSON.stringify(r);
    assert.ok(!line.includes('718-7') && !line.includes('patient='), 'no query string');
  });

  test('a create is C and its body is not recorded; an upstream failure is a serious failure (8)', async () => {
    const marker = 'Body-Marker-Zyx';
    const body = JSON.stringify({ resourceType: 'Observation', status: 'final', subject: { reference: 'Patient/p4' }, note: [{ text: marker }], code: { text: 'x' } });
    const created = await env.call('/system/ehr/Observation', clinician, { method: 'POST', body, headers: { 'content-type': 'application/fhir+json' } });
    const r = await recordOf(created);
    assert.equal(r.action, 'C');
    assert.equal(r.subtype, 'create');
    assert.equal(r.outcome.code, created.status < 400 ? '0' : '4');
    assert.ok(!JSON.stringify(r).includes(marker));

    env.sb.upstreams.ehr.setFault({ status: 500, count: 1, path: '/Patient/p5' });
    const failed = await env.call('/system/ehr/Patient/p5', clinician);
    assert.equal(failed.status, 500);
    const f = await recordOf(failed);
    assert.deepEqual(f.outcome, { code: '8', status: 500 });
    assert.equal(f.upstream.status, 500);
  });

  test('neither the audit log nor the gateway log holds patient names or token text', async () => {
    // Fetch every synthetic patient so their names pass through the gateway at least once.
    for (const id of ['p1', 'p2', 'p3', 'p4', 'p5']) assert.equal((await env.call(`/system/ehr/Patient/${id}`, clinician).then(recordOf)).outcome.status, 200);
    const audit = readFileSync(auditFile, 'utf8');
    const logs = env.gw.lines.join('\n');
    assert.ok(env.gw.lines.length > 0, 'the gateway logged something');
    for (const [name, text] of [['audit log', audit], ['winston log', logs]] as const) {
      // The seed's names end in "-Zyx" (gateway/sandbox/data.ts). Matched with its case and hyphen: the
      // records hold base64url pseudonyms under a random key, and a loose /zyx/i matched one of those now
      // and then (a false alarm, ~1 run in 100).
      assert.ok(!/-Zyx|Zyx Mutual/.test(text), `${name} holds a synthetic patient name`);
      for (const t of tokens) {
        assert.ok(!text.includes(t), `${name} holds a token`);
        assert.ok(!text.includes(t.split('.')[2]), `${name} holds a token signature`);
      }
      assert.ok(!text.includes('Bearer'), `${name} holds an Authorization header`);
    }
  });

  test('every request so far is in one verified chain', async () => {
    const records = readAuditRecords(auditFile);
    const r = await verifyAuditFiles([auditFile]);
    assert.deepEqual(r, { ok: true, records: records.length, head: records.at(-1)!.hash });
    assert.ok(records.length >= 11);
  });

  test('config reloads continue the chain, also when the audit section changes', async () => {
    const file = env.gw.gw.file;
    const before = readAuditRecords(auditFile).length;
    const call = () => env.call('/system/ehr/Patient/p1', clinician).then(recordOf);
    writeFileSync(file, readFileSync(file, 'utf8').replace('- id: ehr-observation-create', '- id: ehr-observation-create-v2'));
    await env.gw.gw.reload();
    await call();
    writeFileSync(file, readFileSync(file, 'utf8').replace('flushIntervalMs: 10', 'flushIntervalMs: 20'));
    await env.gw.gw.reload();
    await call();
    await call();
    const records = readAuditRecords(auditFile);
    assert.equal(records.length, before + 3);
    assert.deepEqual(await verifyAuditFiles([auditFile]), { ok: true, records: records.length, head: records.at(-1)!.hash });
  });
});

describe('audit config is checked at load', () => {
  async function issues(yaml: string): Promise<string[]> {
    return configIssues(yaml);
  }
  const route = (policy: string) => `upstreams: { u: { url: "http://127.0.0.1:1" } }
routes:
  - { id: r, layer: system, match: { path: /r }, target: { upstream: u, path: /r }, policies: [ { audit: ${policy} } ] }
`;

  test('a valid section and policy config compile, with defaults', async () => {
    assert.deepEqual(await issues(`version: 1\naudit: { hashKey: "${'x'.repeat(32)}", sinks: [ { kind: stdout } ] }\n${route('{ failMode: closed }')}`), []);
  });

  test('the policy needs a top-level audit section', async () => {
    assert.deepEqual(await issues(`version: 1\n${route('{}')}`), ['routes[0].policies[0].audit: needs a top-level `audit:` section (hashKey and at least one sink)']);
  });

  test('unknown keys, bad enums, short keys and incomplete sinks are all reported', async () => {
    const found = await issues(`version: 1
audit:
  hashKey: short
  color: blue
  sinks:
    - { kind: file }
    - { kind: http, url: "ftp://siem" }
    - { kind: syslog }
${route('{ failMode: maybe, extra: 1 }')}`);
    for (const expected of [
      'audit.hashKey: must NOT have fewer than 32 characters',
      'audit.color: unknown key',
      'audit.sinks[0].path: is required',
      'audit.sinks[1].url: must match pattern "^https?://"',
      'audit.sinks[2].kind: must be one of: file, stdout, http',
    ]) {
      assert.ok(found.includes(expected), `${expected} in ${JSON.stringify(found)}`);
    }
  });

  test('policy config errors are reported under the route', async () => {
    const found = await issues(`version: 1\naudit: { hashKey: "${'x'.repeat(32)}", sinks: [ { kind: stdout } ] }\n${route('{ failMode: maybe, extra: 1 }')}`);
    assert.ok(found.some((f) => f.startsWith('routes[0].policies[0].audit.failMode: must be one of: open, closed')), JSON.stringify(found));
    assert.ok(found.some((f) => f.startsWith('routes[0].policies[0].audit.extra: unknown key')), JSON.stringify(found));
  });
});
