import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import x12 from 'node-x12';
import { readEventLog } from '../gateway/legacy/event-log.ts';
import { build270 } from '../gateway/legacy/x12/x270.ts';
import { DENIED_CODE, PENDED_CODE, startPayer } from '../gateway/sandbox/payer.ts';
import type { UpstreamServer } from '../gateway/sandbox/http.ts';
import { assertIssues, configIssues, createTestIssuer, problem, readAuditRecords, startGateway, tempDir, waitFor, type TestGateway, type TestIssuer } from './helpers.ts';

const { X12Parser, X12QueryEngine } = x12;
const ELIGIBILITY = '/process/payer/CoverageEligibilityRequest/$submit';
const PAS = '/process/payer/Claim/$submit';

function eligibilityRequest(memberId: string, serviceTypes: string[] = ['30']) {
  return {
    resourceType: 'CoverageEligibilityRequest',
    status: 'active',
    purpose: ['benefits'],
    patient: { reference: '#pat' },
    created: '2026-12-02',
    insurer: { display: 'Sandbox payer' },
    insurance: [{ coverage: { reference: '#cov' } }],
    item: serviceTypes.map((code) => ({ category: { coding: [{ system: 'https://x12.org/codes/service-type-codes', code }] } })),
    contained: [
      { resourceType: 'Patient', id: 'pat', identifier: [{ value: 'p1' }], name: [{ family: 'Testerly-Zyx', given: ['Alma'] }], birthDate: '1980-04-12' },
      { resourceType: 'Coverage', id: 'cov', status: 'active', subscriberId: memberId, beneficiary: { reference: '#pat' }, payor: [{ display: 'Sandbox payer' }] },
    ],
  };
}

function pasBundle(code: string, patient = 'p1') {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [{ resource: { resourceType: 'Claim', status: 'active', use: 'preauthorization', type: { coding: [{ code: 'professional' }] }, patient: { reference: `Patient/${patient}` }, created: '2026-12-02', provider: { display: 'Sandbox Hospital' }, priority: { coding: [{ code: 'normal' }] }, insurance: [{ sequence: 1, focal: true, coverage: { display: 'M-ACTIVE-1' } }], item: [{ sequence: 1, productOrService: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code }] } }] } }],
  };
}

describe('payer adapters: X12 270/271 eligibility and PAS prior authorization', () => {
  let payer: UpstreamServer;
  let gw: TestGateway;
  let issuer: TestIssuer;
  let token: string;
  let auditFile: string;
  let events: string;

  before(async () => {
    payer = await startPayer({ port: 0, decisionDelayMs: 300 });
    issuer = await createTestIssuer('payer-idp');
    token = await issuer.mint({ clientId: 'portal-app' });
    const dir = tempDir('hcgw-payer-');
    auditFile = join(dir, 'audit.log');
    events = join(dir, 'events.jsonl');
    gw = await startGateway(`
version: 1
identity: { issuers: [${issuer.yaml}] }
upstreams:
  payer: { url: ${payer.url} }
audit: { hashKey: payer-test-audit-hash-key-0123456789abcdef, flushIntervalMs: 0, sinks: [{ kind: file, path: ${auditFile} }] }
legacy:
  eventLog: { file: ${events} }
routes:
  - id: eligibility
    layer: process
    match: { methods: [POST], path: ${ELIGIBILITY} }
    target:
      adapter: x12-eligibility
      upstream: payer
      path: /x12/270
      budgetMs: 600
      sender: { id: HCGW }
      receiver: { id: SANDBOXPAYER }
      payer: { name: Sandbox Payer, id: SANDBOXPAYER }
      provider: { name: Sandbox Hospital, npi: "1234567893" }
    policies:
      - audit: {}
      - jwt: { issuers: [payer-idp] }
  - id: prior-auth
    layer: process
    match: { methods: [POST], path: ${PAS} }
    target: { adapter: pas, upstream: payer, path: /pas/Claim/$submit, statusPath: "/pas/ClaimResponse/:id", pollIntervalMs: 100 }
    policies:
      - audit: {}
      - jwt: { issuers: [payer-idp] }
`);
  });
  after(async () => {
    await gw?.close();
    await payer?.close();
  });

  const post = (path: string, body: unknown, auth = true) =>
    fetch(gw.url + path, { method: 'POST', headers: { 'content-type': 'application/fhir+json', ...(auth ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  const x12Records = () => readAuditRecords(auditFile).filter((r) => r.type === 'x12');
  /** The adapter's own record of one response (matched by request id), once the trail wrote it. */
  const recordOf = async (res: Response, type = 'x12') => {
    const id = res.headers.get('x-request-id');
    const find = () => readAuditRecords(auditFile).find((r) => r.type === type && r.requestId === id);
    await waitFor(() => find() !== undefined, 3000, `${type} audit record`);
    return find()!;
  };

  it('the 270 is parsed back by node-x12 (strict) without errors, with control numbers where they belong', () => {
    const control = { isa13: '000000042', gs06: '42', st02: '0042', trn02: 'ABC123' };
    const edi = build270(
      { sender: { id: 'HCGW', qualifier: 'ZZ' }, receiver: { id: 'SANDBOXPAYER', qualifier: 'ZZ' }, payer: { name: 'Sandbox Payer', id: 'SANDBOXPAYER' }, provider: { name: 'Sandbox Hospital', npi: '1234567893' }, subscriber: { memberId: 'M-ACTIVE-1', lastName: 'Test*er~ly', firstName: 'Alma', birthDate: '1980-04-12' }, serviceTypes: ['30', '98'], usage: 'T' },
      control,
    );
    const parser = new X12Parser(true);
    const ic = parser.parse(edi) as InstanceType<typeof x12.X12Interchange>;
    assert.deepEqual(parser.diagnostics, []);
    const tx = ic.functionalGroups[0].transactions[0];
    assert.equal(tx.segments.length + 2, Number(tx.trailer.elements[0].value), 'SE01 counts ST..SE');
    const el = (seg: { elements: Array<{ value: string }> }, n: number) => seg.elements[n - 1].value;
    const group = ic.functionalGroups[0];
    // node-x12 hands ISA13 back as a number ('42'); the text carries the fixed-width field.
    assert.equal(edi.split('~')[0].split('*')[13], '000000042');
    assert.equal(Number(el(ic.header, 13)), 42);
    assert.equal(el(group.header, 6), '42');
    assert.equal(el(group.header, 8), '005010X279A1');
    assert.equal(el(tx.header, 2), '0042');
    const seg = (tag: string) => tx.segments.filter((s) => s.tag === tag);
    assert.equal(el(seg('TRN')[0], 2), 'ABC123');
    const il = seg('NM1').find((s) => el(s, 1) === 'IL')!;
    assert.equal(el(il, 3), 'TEST ER LY', 'delimiters in names cannot add elements');
    assert.equal(il.elements.length, 9);
    assert.deepEqual(seg('EQ').map((s) => el(s, 1)), ['30', '98']);
    assert.deepEqual(new X12QueryEngine(true).query(edi, 'EQ01').map((r) => r.value), ['30', '98']);
  });

  it('active coverage → CoverageEligibilityResponse inforce with the requested benefits; control numbers audited, no PHI', async () => {
    const res = await post(ELIGIBILITY, eligibilityRequest('M-ACTIVE-1', ['30', '98']));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/fhir\+json/);
    const body = (await res.json()) as Record<string, any>;
    assert.equal(body.resourceType, 'CoverageEligibilityResponse');
    assert.equal(body.outcome, 'complete');
    assert.equal(body.insurance[0].inforce, true);
    assert.deepEqual(body.insurance[0].item.map((i: any) => i.category.coding[0].code), ['30', '98']);
    assert.equal(body.insurance[0].item[0].description, 'SANDBOX GOLD PPO');
    const rec = await recordOf(res);
    assert.equal(rec.outcome.code, '0');
    assert.equal(rec.entity.coverage, 'active');
    assert.match(rec.entity.control.isa13, /^\d{9}$/);
    assert.match(rec.entity.control.st02, /^\d{4}$/);
    assert.equal(rec.entity.control.trn02, body.identifier[0].value);
    assert.match(rec.entity.response.isa13, /^\d{9}$/);
    assert.equal(rec.agent.clientId, 'portal-app');
    assert.doesNotMatch(JSON.stringify(rec), /Zyx|Testerly|M-ACTIVE|"p1"/);
  });

  it('inactive coverage → inforce false', async () => {
    const res = await post(ELIGIBILITY, eligibilityRequest('M-INACTIVE-7'));
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, any>;
    assert.equal(body.insurance[0].inforce, false);
    assert.equal((await recordOf(res)).entity.coverage, 'inactive');
  });

  it('AAA rejection → OperationOutcome with the X12 reject reason', async () => {
    const res = await post(ELIGIBILITY, eligibilityRequest('UNKNOWN-1'));
    assert.equal(res.status, 422);
    const body = (await res.json()) as Record<string, any>;
    assert.equal(body.resourceType, 'OperationOutcome');
    assert.deepEqual(body.issue[0].details.coding[0], { system: 'https://x12.org/codes/reject-reason-codes', code: '75' });
    const rec = await recordOf(res);
    assert.deepEqual(rec.outcome, { code: '4', reason: 'AAA 75' });
  });

  it('a payer slower than the budget → 504 problem+json quickly, control numbers audited', async () => {
    payer.setFault({ delayMs: 2000, path: '/x12/270', count: 1 });
    const started = Date.now();
    const res = await post(ELIGIBILITY, eligibilityRequest('M-ACTIVE-1'));
    const took = Date.now() - started;
    assert.equal(res.status, 504);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/upstream-timeout');
    assert.ok(took < 1800, `answered after ${took} ms`);
    const rec = await recordOf(res);
    assert.equal(rec.outcome.code, '8');
    assert.equal(rec.outcome.reason, 'eligibility-budget');
    assert.match(rec.entity.control.isa13, /^\d{9}$/);
    assert.equal(rec.entity.control.trn02, p.trace);
  });

  it('control numbers are unique per call', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await post(ELIGIBILITY, eligibilityRequest('M-ACTIVE-1'));
      assert.equal(res.status, 200);
      await recordOf(res);
    }
    const recs = x12Records();
    assert.ok(recs.length >= 5);
    const isa = recs.map((r) => r.entity.control.isa13);
    const trn = recs.map((r) => r.entity.control.trn02);
    assert.equal(new Set(isa).size, isa.length);
    assert.equal(new Set(trn).size, trn.length);
  });

  it('requests that cannot make a complete 270 are refused before any payer call; unauthenticated ones too', async () => {
    const before = payer.stats().total;
    const noMember = eligibilityRequest('M-ACTIVE-1');
    delete (noMember.contained[1] as Record<string, unknown>).subscriberId;
    const badMember = eligibilityRequest('M ACTIVE*1');
    const noPatient = { ...eligibilityRequest('M-ACTIVE-1'), patient: { reference: 'Patient/p1' } };
    const badService = eligibilityRequest('M-ACTIVE-1', ['30~']);
    for (const body of [noMember, badMember, noPatient, badService, { resourceType: 'Patient' }]) {
      const res = await post(ELIGIBILITY, body);
      assert.equal(res.status, 422, JSON.stringify(body).slice(0, 80));
    }
    assert.equal((await post(ELIGIBILITY, eligibilityRequest('M-ACTIVE-1'), false)).status, 401);
    assert.equal(payer.stats().total, before);
  });

  it('prior auth approved and denied at once: decisions and decision times audited', async () => {
    const ok = await post(PAS, pasBundle('99213'));
    assert.equal(ok.status, 200);
    const denied = await post(PAS, pasBundle(DENIED_CODE));
    assert.equal(denied.status, 200);
    const recs = [await recordOf(ok, 'pas'), await recordOf(denied, 'pas')];
    assert.deepEqual(recs.map((r) => r.entity.priorAuth.decision), ['approved', 'denied']);
    assert.ok(recs.every((r) => typeof r.entity.priorAuth.decisionMs === 'number'));
    assert.doesNotMatch(JSON.stringify(recs), /"p1"|Patient\/p1/);
    assert.equal((await post(PAS, { resourceType: 'Bundle', entry: [{ resource: { resourceType: 'Claim', use: 'claim' } }] })).status, 422);
  });

  it('a pended authorization becomes a priorauth.decided event when the payer decides; decision time recorded', async () => {
    const res = await post(PAS, pasBundle(PENDED_CODE, 'p2'));
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, any>;
    const cr = body.entry[0].resource;
    assert.equal(cr.outcome, 'queued');
    await waitFor(async () => (await readEventLog(events)).some((e) => e.event.type === 'priorauth.decided'), 5000, 'decision event');
    const ev = (await readEventLog(events)).find((e) => e.event.type === 'priorauth.decided')!.event as Record<string, any>;
    assert.equal(ev.subject, `ClaimResponse/${cr.id}`);
    assert.equal(ev.patient, 'p2');
    assert.equal(ev.data.decision, 'approved');
    assert.ok(ev.data.decisionMs >= 300);
    const submit = await recordOf(res, 'pas');
    assert.equal(submit.entity.priorAuth.decision, 'pended');
    await waitFor(() => readAuditRecords(auditFile).some((r) => r.type === 'pas' && r.subtype === 'decision'), 3000, 'decision record');
    const decision = readAuditRecords(auditFile).find((r) => r.type === 'pas' && r.subtype === 'decision')!;
    assert.equal(submit.entity.claimResponseHash, decision.entity.claimResponseHash);
    assert.equal(decision.entity.priorAuth.decisionMs, ev.data.decisionMs);
    assert.equal(submit.entity.priorAuth.decisionMs, undefined);
  });

  it('config: an adapter needs a known upstream, the audit section and valid keys', async () => {
    const route = (target: string) => `
version: 1
upstreams: { payer: { url: "http://127.0.0.1:9" } }
routes:
  - id: elig
    layer: process
    match: { methods: [POST], path: /e }
    target: ${target}
`;
    assertIssues(await configIssues(route('{ adapter: x12-eligibility, upstream: payer, path: /x12, sender: { id: A }, receiver: { id: B }, payer: { name: P, id: P1 }, provider: { name: H, npi: "1234567893" } }')), [/routes\[0\]\.target.*audit/]);
    assertIssues(await configIssues(route('{ adapter: pas, upstream: nope, path: /x, statusPath: "/s/:id" }')), [/unknown upstream "nope"/]);
    assertIssues(await configIssues(route('{ adapter: x12-eligibility, upstream: payer, path: /x12, budgetMs: 0, sender: { id: A }, receiver: { id: B }, payer: { name: P, id: P1 }, provider: { name: H, npi: "12" }, extra: 1 }')), [/budgetMs/, /npi/, /extra|additional/]);
  });
});
