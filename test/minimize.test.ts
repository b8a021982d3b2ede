import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { EPHEMERAL_PORTS, startSandbox } from '../gateway/sandbox/index.ts';
import { configIssues, assertIssues, problem, sandboxPreamble, startSandboxGateway, startUpstream, type SandboxGateway, type TestUpstream } from './helpers.ts';

const KEY_ENV = 'HCGW_TEST_MINIMIZE_KEY';
const KEY = 'test-only-pseudonym-key-0123456789abcdef';

const PROFILES = `
minimization:
  pseudonymKey: \${env:${KEY_ENV}}
  profiles:
    billing-partner:
      description: Payer partners settling claims (minimum necessary for payment)
      resources:
        Patient: [id, birthDate, { field: "identifier[].value", transform: mask }]
        Encounter: [id, status, period, serviceProvider]
      documents:
        claim: [id, patient, encounter, status, created, payer, items, total, "diagnosis[].code"]
    clinical:
      resources:
        Patient: [id, name, birthDate, gender, identifier]
        Encounter: [id, status, class, type, subject, period, reasonCode, serviceProvider, extension, text]
        Observation: [id, meta, status, category, code, subject, encounter, effectiveDateTime, valueQuantity, valueInteger, valueString, valueCodeableConcept]
      documents:
        claim: [id, patient, encounter, status, created, provider, diagnosis, items, total, clinicalNotes]
    research:
      resources:
        Patient: [{ field: id, transform: hash }, birthDate, gender, { field: "identifier[].value", transform: hash }]
`;

const SELECT = `
          purposeOfUse: { required: true, allowed: [TREAT, HPAYMT, HRESCH] }
          select:
            - { when: { purposeOfUse: [HPAYMT], clientIds: [partner-billing] }, profile: billing-partner }
            - { when: { purposeOfUse: [TREAT], roles: [clinician] }, profile: clinical }
            - { when: { purposeOfUse: [HRESCH] }, profile: research }`;

const route = (id: string, path: string, upstream: string, upstreamPath: string, extra = '') => `
  - id: ${id}
    layer: system
    match: { methods: [GET], path: ${path} }
    target: { upstream: ${upstream}, path: ${upstreamPath} }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - minimize:${extra}${SELECT}`;

type Claim = Record<string, unknown> & { items: unknown[] };

/** A mixed searchset as an EHR answering `_include` would send it, complete or one page of many. */
function mixedBundle(total: number) {
  const entry = (resource: Record<string, unknown>) => ({ fullUrl: `http://ehr.internal/fhir/${resource.resourceType}/${resource.id}`, resource, search: { mode: 'match' } });
  return {
    resourceType: 'Bundle', type: 'searchset', total,
    link: [{ relation: 'self', url: 'http://ehr.internal/fhir/Encounter?patient=p1' }],
    entry: [
      entry({ resourceType: 'Encounter', id: 'e1', status: 'finished', subject: { reference: 'Patient/p1' }, reasonCode: [{ text: 'Hypertension' }] }),
      entry({ resourceType: 'Observation', id: 'o1', status: 'final', subject: { reference: 'Patient/p1' } }),
      entry({ resourceType: 'Patient', id: 'p1', birthDate: '1980-04-12', name: [{ family: 'Testerly-Zyx' }], identifier: [{ value: 'MRN-000123451' }] }),
    ],
  };
}

describe('minimize policy', () => {
  let t: SandboxGateway;
  let mixed: TestUpstream;
  let partner: string;
  let clinician: string;
  before(async () => {
    process.env[KEY_ENV] = KEY;
    mixed = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/fhir+json');
      res.end(JSON.stringify(mixedBundle(req.url?.includes('paged') ? 10 : 3)));
    });
    t = await startSandboxGateway(
      () =>
        PROFILES +
        'routes:' +
        route('claims', '/system/billing/claims', 'billing', '/claims', '\n          kind: claim') +
        route('patient', '/system/ehr/Patient/:id', 'ehr', '/Patient/:id') +
        route('observation', '/system/ehr/Observation/:id', 'ehr', '/Observation/:id') +
        route('mixed', '/system/mixed/Encounter', 'mixed', '/Encounter') +
        route('mixed-paged', '/system/mixed/paged', 'mixed', '/paged'),
      { mixed: mixed.url },
    );
    partner = await t.token({ clientId: 'partner-billing' });
    clinician = await t.token({ clientId: 'clinician-app', claims: { role: 'clinician' } });
  });
  after(async () => {
    await t.close();
    await mixed.close();
    delete process.env[KEY_ENV];
  });

  const as = (token: string, purpose: string | undefined, path: string) => t.call(path, token, { headers: purpose ? { 'x-purpose-of-use': purpose } : {} });

  test('a billing partner declaring HPAYMT gets billing fields of every claim, never clinical notes or providers', async () => {
    const res = await as(partner, 'HPAYMT', '/system/billing/claims?patient=Patient/p2');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { data: Claim[]; total: number };
    assert.equal(body.total, 3);
    assert.equal(body.data.length, 3);
    for (const c of body.data) {
      assert.deepEqual(Object.keys(c).sort(), ['created', 'diagnosis', 'encounter', 'id', 'items', 'patient', 'payer', 'status', 'total']);
      assert.deepEqual(Object.keys((c.diagnosis as object[])[0]), ['code'], 'diagnosis code only, no display text');
      assert.ok(c.items.length > 0);
    }
    const text = JSON.stringify(body);
    assert.doesNotMatch(text, /clinicalNotes|SYNTHETIC|PSYCH|Organization\/org-psych/);
  });

  test('the same request by a clinician declaring TREAT carries the clinical fields', async () => {
    const res = await as(clinician, 'TREAT', '/system/billing/claims?patient=Patient/p2');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { data: Claim[] };
    assert.equal(body.data.length, 3);
    assert.ok(body.data.every((c) => typeof c.clinicalNotes === 'string' && (c.clinicalNotes as string).startsWith('SYNTHETIC')));
    assert.ok(body.data.every((c) => typeof c.provider === 'string' && c.payer === undefined));
  });

  test('purpose of use: required, known codes only, bound by the token claim; no matching profile is a 403 before the upstream', async () => {
    const calls = () => t.sb.upstreams.billing.stats().total;
    const before = calls();
    const none = await as(partner, undefined, '/system/billing/claims');
    assert.equal(none.status, 400);
    assert.equal((await problem(none)).type, 'https://hcgw.dev/problems/bad-request');
    const unknown = await as(partner, 'BECAUSE', '/system/billing/claims');
    assert.equal(unknown.status, 400);
    await unknown.arrayBuffer();
    const notAllowed = await as(partner, 'HMARKT', '/system/billing/claims');
    assert.equal(notAllowed.status, 403);
    await notAllowed.arrayBuffer();
    const noProfile = await as(clinician, 'HPAYMT', '/system/billing/claims');
    assert.equal(noProfile.status, 403);
    const p = await problem(noProfile);
    assert.equal(p.type, 'https://hcgw.dev/problems/forbidden');
    assert.equal(calls(), before, 'refused requests never reached billing');

    const bound = await t.token({ clientId: 'partner-billing', claims: { purpose_of_use: 'HPAYMT' } });
    const fromClaim = await as(bound, undefined, '/system/billing/claims?patient=Patient/p1');
    assert.equal(fromClaim.status, 200, 'the token claim declares the purpose');
    assert.equal(((await fromClaim.json()) as { data: Claim[] }).data[0].clinicalNotes, undefined);
    const mismatch = await as(bound, 'TREAT', '/system/billing/claims');
    assert.equal(mismatch.status, 403, 'a header cannot widen the purpose the token grants');
    await mismatch.arrayBuffer();
  });

  test('identifiers are masked to their last 4 characters; Content-Length and ETag describe the bytes sent', async () => {
    const direct = await fetch(`${t.sb.urls.ehr}/Patient/p1`);
    const upstreamEtag = direct.headers.get('etag');
    await direct.arrayBuffer();
    const res = await as(partner, 'HPAYMT', '/system/ehr/Patient/p1');
    assert.equal(res.status, 200);
    const raw = Buffer.from(await res.arrayBuffer());
    const body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(body, {
      resourceType: 'Patient',
      id: 'p1',
      birthDate: '1980-04-12',
      identifier: [{ value: '*********3451' }, { value: '*******0001' }],
    });
    assert.equal(res.headers.get('content-length'), String(raw.length));
    const etag = res.headers.get('etag') ?? '';
    assert.notEqual(etag, upstreamEtag);
    assert.equal(etag, `W/"${createHash('sha256').update(raw).digest('base64url').slice(0, 27)}"`);
    assert.doesNotMatch(raw.toString(), /Zyx|999-00|Faketown/);
  });

  test('identifiers are hashed with HMAC-SHA256 under the configured key: stable pseudonyms, no originals', async () => {
    const researcher = await t.token({ clientId: 'research-app' });
    const hmac = (v: string) => `hmac-sha256:${createHmac('sha256', KEY).update(v).digest('base64url')}`;
    const res = await as(researcher, 'HRESCH', '/system/ehr/Patient/p2');
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(body, {
      resourceType: 'Patient',
      id: hmac('p2'),
      birthDate: '1975-09-30',
      gender: 'male',
      identifier: [{ value: hmac('MRN-000123452') }, { value: hmac('999-00-0002') }],
    });
    const again = (await (await as(researcher, 'HRESCH', '/system/ehr/Patient/p2')).json()) as Record<string, unknown>;
    assert.equal(again.id, body.id, 'the same input always gives the same pseudonym');
  });

  test('Bundles are minimized entry by entry: types the profile does not release go, total follows, fullUrl and links go', async () => {
    const res = await as(partner, 'HPAYMT', '/system/mixed/Encounter');
    assert.equal(res.status, 200);
    const b = (await res.json()) as { total: number; entry: Array<{ resource: Record<string, unknown>; fullUrl?: string }>; link?: unknown };
    assert.equal(b.total, 2);
    assert.deepEqual(b.entry.map((e) => e.resource.resourceType), ['Encounter', 'Patient']);
    assert.deepEqual(b.entry[0].resource, { resourceType: 'Encounter', id: 'e1', status: 'finished' });
    assert.deepEqual(b.entry[1].resource, { resourceType: 'Patient', id: 'p1', birthDate: '1980-04-12', identifier: [{ value: '*********3451' }] });
    assert.ok(b.entry.every((e) => e.fullUrl === undefined));
    assert.equal(b.link, undefined);
    assert.doesNotMatch(JSON.stringify(b), /ehr\.internal|Zyx|Hypertension/);

    const xml = await t.call('/system/mixed/Encounter?_format=xml&status=finished', partner, { headers: { 'x-purpose-of-use': 'HPAYMT', accept: 'application/fhir+xml' } });
    assert.equal(xml.status, 200);
    await xml.arrayBuffer();
    const sent = mixed.requests.at(-1)!;
    assert.equal(sent.url, '/Encounter?status=finished', 'a non-JSON _format cannot walk around minimization');
    assert.equal(sent.headers.accept, 'application/fhir+json, application/json');

    const paged = (await (await as(partner, 'HPAYMT', '/system/mixed/paged')).json()) as { total?: number; entry: unknown[] };
    assert.equal(paged.entry.length, 2);
    assert.equal(paged.total, undefined, 'one page of many: the true count of visible matches is unknown, so no total');
  });

  test('a single resource of a type the profile does not release is refused', async () => {
    const res = await as(partner, 'HPAYMT', '/system/ehr/Observation/obs-p1-hr');
    assert.equal(res.status, 403);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/forbidden');
    assert.doesNotMatch(JSON.stringify(p), /obs-p1|Heart/);
  });
});

describe('minimize policy: configuration', () => {
  test('unknown profile, hashing without a key, selectors with an index, missing section and both kind and parts are load errors', async () => {
    const sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    try {
      const yaml = `${sandboxPreamble(sb)}
minimization:
  profiles:
    hashing: { resources: { Patient: [{ field: id, transform: hash }] } }
    indexed: { resources: { Patient: ["name[0].family"] } }
routes:
  - id: a
    layer: system
    match: { path: /a }
    target: { upstream: ehr, path: /Patient }
    policies:
      - minimize: { select: [{ profile: nope }] }
  - id: b
    layer: system
    match: { path: /b }
    target: { upstream: ehr, path: /Patient }
    policies:
      - minimize: { select: [{ profile: hashing }] }
  - id: c
    layer: system
    match: { path: /c }
    target: { upstream: ehr, path: /Patient }
    policies:
      - minimize: { kind: claim, parts: { a: fhir }, select: [{ profile: hashing }] }
`;
      assertIssues(await configIssues(yaml), [
        /^minimization\.profiles\.indexed\.resources\.Patient\[0\]: must match pattern/,
      ]);
      const yaml2 = yaml.replace('    indexed: { resources: { Patient: ["name[0].family"] } }\n', '');
      assertIssues(await configIssues(yaml2), [
        /^routes\[0\]\.policies\[0\]\.minimize\.select\[0\]\.profile: unknown profile "nope"/,
        /^routes\[1\]\.policies\[0\]\.minimize\.select\[0\]\.profile: .*pseudonymKey is not set/,
        /^routes\[2\]\.policies\[0\]\.minimize\.parts: give either `kind` or `parts`/,
      ]);
      const noSection = `${sandboxPreamble(sb)}
routes:
  - id: a
    layer: system
    match: { path: /a }
    target: { upstream: ehr, path: /Patient }
    policies:
      - minimize: { select: [{ profile: x }] }
`;
      assertIssues(await configIssues(noSection), [/^[^ ]*: .*minimization:/]);
    } finally {
      await sb.close();
    }
  });
});
