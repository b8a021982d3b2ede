import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fhirSeed } from '../gateway/sandbox/data.ts';
import { assertIssues, configIssues, problem, readAuditRecords, startSandboxGateway, waitFor, type SandboxGateway, tempDir } from './helpers.ts';

const AUDIT_KEY_ENV = 'HCGW_TEST_CONSENT_AUDIT_KEY';
const dir = tempDir('hcgw-consent-');
const auditFile = join(dir, 'audit.log');
const consentFile = join(dir, 'consents.json');

const route = (id: string, path: string, upstreamPath: string, consent: string, extra = '') => `
  - id: ${id}
    layer: system
    match: { methods: [GET], path: ${path} }
    target: { upstream: ehr, path: ${upstreamPath} }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - audit: {}${extra}
      - consent: ${consent}`;

const EHR = '{ source: { upstream: ehr }, cache: { ttlMs: 0 } }';
const MINIMIZE = `
      - minimize:
          select:
            - profile: everything`;

type Bundle = { total?: number; entry: Array<{ resource: { id: string; resourceType: string } }> };
const ids = (b: Bundle) => b.entry.map((e) => e.resource.id).sort();

describe('consent policy', () => {
  let t: SandboxGateway;
  let clinician: string;
  let partner: string;
  let patient2: string;
  let patient1: string;
  before(async () => {
    process.env[AUDIT_KEY_ENV] = 'test-only-audit-key-0123456789abcdef';
    writeFileSync(consentFile, JSON.stringify(fhirSeed().filter((r) => r.resourceType === 'Consent')));
    t = await startSandboxGateway(
      () => `
audit:
  hashKey: \${env:${AUDIT_KEY_ENV}}
  flushIntervalMs: 0
  sinks: [{ kind: file, path: "${auditFile}" }]
minimization:
  profiles:
    everything:
      resources:
        Observation: [id, meta, status, category, code, subject, valueQuantity, valueInteger]
        Encounter: [id, meta, status, subject]
routes:` +
        route('obs-search', '/system/ehr/Observation', '/Observation', EHR) +
        route('obs-read', '/system/ehr/Observation/:id', '/Observation/:id', EHR) +
        route('enc-search', '/system/ehr/Encounter', '/Encounter', EHR) +
        route('obs-refuse', '/refuse/Observation', '/Observation', '{ source: { upstream: ehr }, onDenied: refuse }') +
        route('obs-open', '/open/Observation', '/Observation', '{ source: { upstream: ehr }, failMode: open, cache: { ttlMs: 0 } }') +
        route('obs-cached', '/cached/Observation', '/Observation', '{ source: { upstream: ehr }, cache: { ttlMs: 60000, maxEntries: 10 } }') +
        route('obs-file', '/file/Observation', '/Observation', `{ source: { file: "${consentFile}" } }`) +
        route('obs-minimized', '/minimized/Observation', '/Observation', EHR, MINIMIZE) +
        '',
    );
    clinician = await t.token({ clientId: 'clinician-app', fhirUser: 'Practitioner/pr-1' });
    partner = await t.token({ clientId: 'partner-billing' });
    patient2 = await t.token({ clientId: 'portal-app', patient: 'p2', fhirUser: 'Patient/p2' });
    patient1 = await t.token({ clientId: 'portal-app', patient: 'p1', fhirUser: 'Patient/p1' });
  });
  after(async () => {
    await t.close();
    delete process.env[AUDIT_KEY_ENV];
  });

  const get = async (path: string, token: string, purpose?: string) => {
    const res = await t.call(path, token, { headers: purpose ? { 'x-purpose-of-use': purpose } : {} });
    return { status: res.status, body: (await res.json()) as Bundle & Record<string, unknown> };
  };

  test("p2's deny on PSY-labelled data removes the mental-health Observations for everyone but p2, total adjusted", async () => {
    const direct = (await (await fetch(`${t.sb.urls.ehr}/Observation?patient=p2`)).json()) as Bundle;
    assert.equal(direct.total, 5);
    const clin = await get('/system/ehr/Observation?patient=p2', clinician, 'TREAT');
    assert.equal(clin.status, 200);
    assert.deepEqual(ids(clin.body), ['obs-p2-hr', 'obs-p2-tsh']);
    assert.equal(clin.body.total, 2);
    const other = await get('/system/ehr/Observation?patient=p2', patient1, 'PATRQT');
    assert.deepEqual(ids(other.body), ['obs-p2-hr', 'obs-p2-tsh'], 'another patient is not the actor the exception names');
    const self = await get('/system/ehr/Observation?patient=p2', patient2, 'PATRQT');
    assert.equal(self.body.total, 5, 'the nested permit lets the patient see their own PSY data');
    assert.deepEqual(ids(self.body), ids(direct));

    const enc = await get('/system/ehr/Encounter?patient=p2', clinician, 'TREAT');
    assert.deepEqual(ids(enc.body), ['e-p2-1']);
    assert.equal(enc.body.total, 1);
  });

  test('a denied single resource is refused (403) without naming it; the patient still reads it', async () => {
    const res = await t.call('/system/ehr/Observation/obs-p2-phq9', clinician, { headers: { 'x-purpose-of-use': 'TREAT' } });
    assert.equal(res.status, 403);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/forbidden');
    assert.doesNotMatch(JSON.stringify(p), /phq9|PHQ|Quibble/);
    const own = await get('/system/ehr/Observation/obs-p2-phq9', patient2);
    assert.equal(own.status, 200);
    assert.equal(own.body.id, 'obs-p2-phq9');
    const allowed = await get('/system/ehr/Observation/obs-p2-hr', clinician, 'TREAT');
    assert.equal(allowed.status, 200);
  });

  test("p3's consent denies laboratory Observations for payment (HPAYMT) only", async () => {
    const pay = await get('/system/ehr/Observation?patient=p3', partner, 'HPAYMT');
    assert.deepEqual(ids(pay.body), ['obs-p3-hr']);
    assert.equal(pay.body.total, 1);
    const treat = await get('/system/ehr/Observation?patient=p3', clinician, 'TREAT');
    assert.deepEqual(ids(treat.body), ['obs-p3-ferr', 'obs-p3-hgb', 'obs-p3-hr']);
    const undeclared = await get('/system/ehr/Observation?patient=p3', partner);
    assert.equal(undeclared.body.total, 3, 'the deny names a purpose: without one declared it does not apply');
  });

  test('a Bundle spanning patients is decided resource by resource; inactive consents are ignored', async () => {
    const labs = await get('/system/ehr/Observation?category=laboratory', partner, 'HPAYMT');
    assert.deepEqual(ids(labs.body), ['obs-p1-a1c', 'obs-p1-glu', 'obs-p2-tsh', 'obs-p4-hiv', 'obs-p5-inr']);
    const both = await get('/system/ehr/Observation?patient=p2,p3', partner, 'HPAYMT');
    assert.deepEqual(ids(both.body), ['obs-p2-hr', 'obs-p2-tsh', 'obs-p3-hr']);
    assert.equal(both.body.total, 3);
    // p1's only consent denies research, but it is inactive.
    const research = await get('/system/ehr/Observation?patient=p1', partner, 'HRESCH');
    assert.equal(research.body.total, 4);
  });

  test('onDenied: refuse answers 403 instead of filtering', async () => {
    const res = await t.call('/refuse/Observation?patient=p2', clinician);
    assert.equal(res.status, 403);
    await res.arrayBuffer();
    const fine = await get('/refuse/Observation?patient=p1', clinician);
    assert.equal(fine.status, 200);
  });

  test('consents from a file give the same decisions', async () => {
    const clin = await get('/file/Observation?patient=p2', clinician);
    assert.deepEqual(ids(clin.body), ['obs-p2-hr', 'obs-p2-tsh']);
    const pay = await get('/file/Observation?patient=p3', partner, 'HPAYMT');
    assert.deepEqual(ids(pay.body), ['obs-p3-hr']);
  });

  test('EHR unable to answer for consent: closed → 503 before the search runs, open → released and recorded as unknown', async () => {
    try {
      t.sb.upstreams.ehr.setFault({ status: 503, path: '/Consent' });
      const searches = () => t.sb.upstreams.ehr.stats().requests['GET /fhir/Observation'] ?? 0;
      const before = searches();
      const closed = await t.call('/system/ehr/Observation?patient=p2', clinician);
      assert.equal(closed.status, 503);
      const p = await problem(closed);
      assert.equal(p.type, 'https://hcgw.dev/problems/unavailable');
      assert.equal(searches(), before, 'the patient was known up front: no search ran');
      const noHint = await t.call('/system/ehr/Observation?category=survey', clinician);
      assert.equal(noHint.status, 503, 'closed also when the patients are only known from the response');
      await noHint.arrayBuffer();

      const open = await get('/open/Observation?patient=p2', clinician);
      assert.equal(open.status, 200);
      assert.equal(open.body.total, 5);
      const metrics = await (await fetch(`${t.gw.url}/metrics`)).text();
      assert.match(metrics, /hcgw_consent_lookup_failures_total\{route="obs-search",mode="closed"\} [1-9]/);
      assert.match(metrics, /hcgw_consent_lookup_failures_total\{route="obs-open",mode="open"\} [1-9]/);
    } finally {
      t.sb.upstreams.ehr.clearFaults();
    }
  });

  test('consents are cached briefly per patient: one look-up serves later requests', async () => {
    const lookups = () => t.sb.upstreams.ehr.stats().requests['GET /fhir/Consent'] ?? 0;
    const first = lookups();
    for (let i = 0; i < 3; i++) {
      const r = await get('/cached/Observation?patient=p2', clinician);
      assert.deepEqual(ids(r.body), ['obs-p2-hr', 'obs-p2-tsh']);
    }
    assert.equal(lookups(), first + 1);
    t.sb.upstreams.ehr.setFault({ status: 503, path: '/Consent' });
    try {
      const cached = await get('/cached/Observation?patient=p2', clinician);
      assert.equal(cached.status, 200, 'served from the cache while the EHR cannot answer');
    } finally {
      t.sb.upstreams.ehr.clearFaults();
    }
  });

  test('with minimize listed before consent, consent judges full resources first; the other order is refused at load', async () => {
    const ok = await get('/minimized/Observation?patient=p2', clinician);
    assert.deepEqual(ids(ok.body), ['obs-p2-hr', 'obs-p2-tsh']);
    const misordered = `
version: 1
identity: { issuers: [{ name: idp, issuer: https://idp.example, secret: "0123456789abcdef0123456789abcdef", algorithms: [HS256], audiences: [api] }] }
upstreams: { ehr: { url: "http://127.0.0.1:9/fhir" } }
minimization: { profiles: { clinical: { resources: { Observation: [id, status] } } } }
routes:
  - id: obs-misordered
    layer: system
    match: { methods: [GET], path: /misordered/Observation }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [idp] }
      - consent: { source: { upstream: ehr } }
      - minimize: { select: [{ profile: clinical }] }
`;
    assertIssues(await configIssues(misordered), [/routes\[0\]\.policies\[2\]\.minimize: .*move `minimize` above `consent`/]);
  });

  test('decisions land on exchange.consent and reach the audit trail with the purpose of use', async () => {
    const res = await get('/system/ehr/Observation?patient=p2', clinician, 'TREAT');
    assert.equal(res.status, 200);
    let record: Record<string, any> | undefined;
    await waitFor(() => {
      record = readAuditRecords(auditFile).find((r) => r.policy?.consent?.removed === 3 && r.purposeOfUse === 'TREAT' && r.entity?.route === 'obs-search');
      return record !== undefined;
    }, 5000, 'the audit record');
    assert.deepEqual(record!.policy.consent, { consentIds: ['consent-p2-psy'], decision: 'partial', removed: 3 });
    assert.ok(record!.policy.decisions.some((d: { policy: string; outcome: string }) => d.policy === 'consent' && d.outcome === 'modify'));
  });
});
