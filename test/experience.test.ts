import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EPHEMERAL_PORTS, startSandbox } from '../gateway/sandbox/index.ts';
import { configIssues, assertIssues, problem, sandboxPreamble, startSandboxGateway, type SandboxGateway } from './helpers.ts';

/** "My visits and balance": Encounters from the EHR and the balance from billing, one call each. */
const OVERVIEW_SOURCE = `
    target:
      compose:
        - { name: encounters, upstream: ehr, path: /Encounter, query: { patient: "{{ params.id }}" } }
        - { name: balance, upstream: billing, path: "/accounts/{{ params.id }}/balance" }
      merge:
        encounters: steps.encounters.body
        balance: steps.balance.body
    project:
      visitCount: encounters.total
      visits:
        from: encounters.entry[].resource
        where: { resourceType: Encounter }
        each:
          id: id
          date: period.start
          type: type[0].text
          reason: reasonCode[0].text
          clinic: serviceProvider.reference
      balance: { fields: { due: balance.balance.value, currency: balance.balance.currency } }
      view: { const: visits-and-balance }`;

const ROUTES = `
minimization:
  profiles:
    portal:
      resources:
        Encounter: [id, period, type, serviceProvider]
      documents:
        account-balance: [balance, paid]
routes:
  - id: patient-card
    layer: experience
    match: { methods: [GET], path: /experience/patients/:id/card }
    target: { upstream: ehr, path: /Patient/:id }
    policies:
      - jwt: { issuers: [sandbox-idp] }
    project:
      patientId: id
      family: name[0].family
      given: name[].given
      born: birthDate
      phones: { from: telecom, where: { system: phone }, each: value }
      mrn: { from: "identifier[0].value" }
      language: { from: "communication[0].language.text", default: unknown }
      address: { from: "address[0]", pick: [city, state] }
  - id: portal-overview
    layer: experience
    match: { methods: [GET], path: /experience/patients/:id/overview }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - minimize: { parts: { encounters: fhir, balance: account-balance }, select: [{ profile: portal }] }
      - consent: { source: { upstream: ehr }, cache: { ttlMs: 0 } }
${OVERVIEW_SOURCE}
`;

describe('experience APIs', () => {
  let t: SandboxGateway;
  let clinician: string;
  before(async () => {
    t = await startSandboxGateway(() => ROUTES);
    clinician = await t.token({ clientId: 'clinician-app', fhirUser: 'Practitioner/pr-1' });
  });
  after(async () => {
    await t.close();
  });

  test('a projection renames, flattens, filters arrays, picks keys and fills defaults from one system call', async () => {
    const res = await t.call('/experience/patients/p1/card', clinician);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const raw = Buffer.from(await res.arrayBuffer());
    assert.equal(res.headers.get('content-length'), String(raw.length));
    assert.deepEqual(JSON.parse(raw.toString('utf8')), {
      patientId: 'p1',
      family: 'Testerly-Zyx',
      given: ['Alma'],
      born: '1980-04-12',
      phones: ['555-0110'],
      mrn: 'MRN-000123451',
      language: 'unknown',
      address: { city: 'Faketown', state: 'ZZ' },
    });
  });

  test('a missing source resource is a 404 problem that does not echo the upstream body', async () => {
    const res = await t.call('/experience/patients/p999/card', clinician);
    assert.equal(res.status, 404);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/not-found');
    assert.doesNotMatch(JSON.stringify(p), /p999|OperationOutcome/);
  });

  test('"my visits and balance" for the patient: composed, minimized, then projected', async () => {
    const self = await t.token({ clientId: 'portal-app', patient: 'p2', fhirUser: 'Patient/p2' });
    const res = await t.call('/experience/patients/p2/overview', self);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { visits: Array<Record<string, unknown>>; visitCount: number; balance: Record<string, unknown>; view: string };
    assert.equal(body.view, 'visits-and-balance');
    assert.equal(body.visitCount, 3);
    assert.deepEqual(body.visits.map((v) => v.id), ['e-p2-1', 'e-p2-2', 'e-p2-3'], 'the patient sees their own PSY visits');
    assert.deepEqual(body.visits[1], { id: 'e-p2-2', date: '2024-02-24T09:00:00Z', type: 'Psychiatric evaluation', clinic: 'Organization/org-psych' });
    assert.ok(body.visits.every((v) => v.reason === undefined), 'minimization ran on the source: the projected reason had nothing to read');
    // Billing: claims 160 + 250 + 160 = 570 charged, paid 80% of the two paid ones (128 + 200).
    assert.deepEqual(body.balance, { due: 242, currency: 'USD' });
  });

  test('consent runs on the source too: a clinician gets the overview without PSY visits, counts adjusted', async () => {
    const res = await t.call('/experience/patients/p2/overview', clinician);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { visits: Array<{ id: string }>; visitCount: number };
    assert.deepEqual(body.visits.map((v) => v.id), ['e-p2-1']);
    assert.equal(body.visitCount, 1);
    assert.doesNotMatch(JSON.stringify(body), /psych|Psychiatric|Psychotherapy/i);
  });
});

describe('experience APIs: configuration', () => {
  test('experience routes need project:, system routes refuse it, bad paths are named where they are', async () => {
    const sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    try {
      const yaml = `${sandboxPreamble(sb)}
routes:
  - id: no-projection
    layer: experience
    match: { path: /a }
    target: { upstream: ehr, path: /Patient }
  - id: system-with-projection
    layer: system
    match: { path: /b }
    target: { upstream: ehr, path: /Patient }
    project: { total: total }
  - id: bad-path
    layer: experience
    match: { path: /c }
    target: { upstream: ehr, path: /Patient }
    project:
      visits: { from: "entry[.resource", each: { id: id } }
      n: { const: 1, from: total }
`;
      assertIssues(await configIssues(yaml), [
        /^routes\[2\]\.project\.visits\.from: must match pattern/,
        /^routes\[2\]\.project\.n\.from: unknown key/,
      ]);
      const compileOnly = yaml.slice(0, yaml.indexOf('  - id: bad-path'));
      assertIssues(await configIssues(compileOnly), [
        /^routes\[0\]\.target: an experience route needs `project:`/,
        /^routes\[1\]\.target: `project:` belongs to experience routes only/,
      ]);
    } finally {
      await sb.close();
    }
  });
});
