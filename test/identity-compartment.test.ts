import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEhr, startIdp, type DevIdp, type UpstreamServer } from '../gateway/sandbox/index.ts';
import { configIssues, problem, startGateway, startUpstream, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

const obs = (id: string, subject: unknown) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, ...(subject === undefined ? {} : { subject }) });
const match = (resource: unknown) => ({ fullUrl: `http://up/${(resource as { id: string }).id}`, resource, search: { mode: 'match' } });

/** What a careless or hostile upstream returns whatever the query says: several patients mixed. */
const MIXED_BUNDLE = {
  resourceType: 'Bundle',
  type: 'searchset',
  total: 8,
  entry: [
    match(obs('mine-1', { reference: 'Patient/p1' })),
    match(obs('mine-2', { reference: 'http://ehr.example/fhir/Patient/p1/_history/3' })),
    match(obs('theirs-1', { reference: 'Patient/p2' })),
    match(obs('group-subject', { reference: 'Group/p1' })),
    match(obs('identifier-only', { identifier: { system: 'urn:mrn', value: '123' } })),
    match(obs('no-subject', undefined)),
    match({ resourceType: 'Patient', id: 'p2' }),
    match({ resourceType: 'Patient', id: 'p1' }),
    { resource: { resourceType: 'Practitioner', id: 'pr-1' }, search: { mode: 'include' } },
  ],
};

function route(id: string, method: string, path: string, upstreamPath: string, fhir: string, compartment = '{}', upstream = 'ehr') {
  return `
  - id: ${id}
    layer: system
    match: { methods: [${method}], path: ${path} }
    fhir: { ${fhir} }
    target: { upstream: ${upstream}, path: ${upstreamPath} }
    policies:
      - jwt: { issuers: [dev] }
      - scopes: { smart: true }
      - patient-compartment: ${compartment}`;
}

describe('patient-compartment: a patient token only ever touches its own patient', () => {
  let idp: DevIdp;
  let ehr: UpstreamServer;
  let hostile: TestUpstream;
  let gw: TestGateway;
  let p1: string;
  let clinician: string;

  before(async () => {
    [idp, ehr] = await Promise.all([startIdp({ port: 0 }), startEhr({ port: 0 })]);
    hostile = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/fhir+json');
      const path = (req.url ?? '').split('?')[0];
      if (path === '/Observation') return res.end(JSON.stringify(MIXED_BUNDLE));
      if (path === '/Encounter') {
        const entry = ['p1', 'p2', 'p3'].map((p) => match({ resourceType: 'Encounter', id: `enc-${p}`, subject: { reference: `Patient/${p}` } }));
        return res.end(JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: 3, entry }));
      }
      if (path === '/Observation/theirs-1') return res.end(JSON.stringify(obs('theirs-1', { reference: 'Patient/p2' })));
      if (path === '/Observation/trimmed') return res.end(JSON.stringify(obs('trimmed', undefined)));
      // Names p1 but is no FHIR resource (no resourceType): nothing a write may be judged by.
      if (path === '/Observation/untyped') return res.end(JSON.stringify({ id: 'untyped', subject: { reference: 'Patient/p1' } }));
      if (path === '/claims') {
        res.setHeader('content-type', 'application/json');
        return res.end(JSON.stringify({ data: [{ id: 'c1', patient: 'Patient/p1' }, { id: 'c2', patient: 'Patient/p2' }, { id: 'c3' }], total: 3 }));
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
    });
    gw = await startGateway(`version: 1
identity:
  issuers:
    - { name: dev, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }
upstreams:
  ehr: { url: "${ehr.url}" }
  hostile: { url: "${hostile.url}" }
routes:${route('patient-read', 'GET', '/ehr/Patient/:id', '/Patient/:id', 'resourceType: Patient, interaction: read')}${route(
      'patient-search',
      'GET',
      '/ehr/Patient',
      '/Patient',
      'resourceType: Patient, interaction: search',
    )}${route('obs-search', 'GET', '/ehr/Observation', '/Observation', 'resourceType: Observation, interaction: search')}${route(
      'obs-read',
      'GET',
      '/ehr/Observation/:id',
      '/Observation/:id',
      'resourceType: Observation, interaction: read',
    )}${route('enc-read', 'GET', '/ehr/Encounter/:id', '/Encounter/:id', 'resourceType: Encounter, interaction: read', '{ foreignRead: not-found }')}${route(
      'obs-create',
      'POST',
      '/ehr/Observation',
      '/Observation',
      'resourceType: Observation, interaction: create',
    )}${route('obs-update', 'PUT', '/ehr/Observation/:id', '/Observation/:id', 'resourceType: Observation, interaction: update')}${route(
      'hostile-search',
      'GET',
      '/hostile/Observation',
      '/Observation',
      'resourceType: Observation, interaction: search',
      '{}',
      'hostile',
    )}${route('hostile-update', 'PUT', '/hostile/Observation/:id', '/Observation/:id', 'resourceType: Observation, interaction: update', '{}', 'hostile')}${route('hostile-enc', 'GET', '/hostile/Encounter', '/Encounter', 'resourceType: Encounter, interaction: search', '{}', 'hostile')}${route('hostile-read', 'GET', '/hostile/Observation/:id', '/Observation/:id', 'resourceType: Observation, interaction: read', '{}', 'hostile')}${route(
      'hostile-claims',
      'GET',
      '/hostile/claims',
      '/claims',
      'resourceType: Claim, interaction: search',
      '{}',
      'hostile',
    )}
`);
    p1 = await idp.mint({ clientId: 'portal-app', patient: 'p1', scopes: ['patient/*.rs', 'patient/Observation.cu'] });
    clinician = await idp.mint({ clientId: 'clinician-app', fhirUser: 'Practitioner/pr-1', scopes: ['user/*.cruds'] });
  });
  after(async () => {
    await gw?.close();
    await Promise.all([idp?.close(), ehr?.close(), hostile?.close()]);
  });

  const call = (path: string, token: string, init: RequestInit = {}) =>
    fetch(`${gw.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/fhir+json' } : {}) } });
  const bundle = async (res: Response) => {
    assert.equal(res.status, 200);
    return (await res.json()) as { total?: number; entry?: Array<{ resource: { resourceType: string; id: string; subject?: { reference: string } } }> };
  };
  const ehrCalls = () => ehr.stats().total;
  async function refused(res: Response, status = 403, reason?: RegExp) {
    assert.equal(res.status, status);
    const p = await problem(res);
    if (reason) assert.match(String(p.detail), reason);
    assert.ok(!JSON.stringify(p).includes('p2'), 'the other patient is not named in the answer');
    return p;
  }

  test('reading its own Patient works; another Patient by id is refused before the EHR is asked', async () => {
    const own = await call('/ehr/Patient/p1', p1);
    assert.equal(own.status, 200);
    assert.equal(((await own.json()) as { id: string }).id, 'p1');
    const before = ehrCalls();
    for (const id of ['p2', 'p3', 'P1', 'p1.', 'p10']) await refused(await call(`/ehr/Patient/${id}`, p1));
    assert.equal(ehrCalls(), before, 'no request for another patient reached the EHR');
  });

  test('Patient searches are confined to the own patient (_id added; other ids, lists, duplicates refused)', async () => {
    const all = await bundle(await call('/ehr/Patient', p1));
    assert.deepEqual(all.entry!.map((e) => e.resource.id), ['p1']);
    const byName = await bundle(await call('/ehr/Patient?family=Quibble-Zyx', p1));
    assert.equal(byName.total, 0, "searching by another patient's name finds nothing");
    for (const q of ['_id=p2', '_id=p1,p2', '_id=p1&_id=p2', '_id=p2&_id=p1']) await refused(await call(`/ehr/Patient?${q}`, p1));
  });

  test('Observation searches get patient=<context>; other patients by patient= or subject= are refused', async () => {
    const mine = await bundle(await call('/ehr/Observation', p1));
    assert.equal(mine.total, 4);
    assert.ok(mine.entry!.every((e) => e.resource.subject?.reference === 'Patient/p1'));
    assert.equal((await bundle(await call('/ehr/Observation?_id=obs-p2-hr', p1))).total, 0, "another patient's observation by _id search finds nothing");
    assert.equal((await bundle(await call('/ehr/Observation?patient=Patient/p1', p1))).total, 4);
    assert.equal((await bundle(await call('/ehr/Observation?subject=p1&category=vital-signs', p1))).entry!.every((e) => e.resource.subject?.reference === 'Patient/p1'), true);
    const before = ehrCalls();
    for (const q of ['patient=p2', 'subject=Patient/p2', 'patient=p1,p2', 'patient=p1&patient=p2', 'patient=p1&subject=Patient/p2', 'patient=Group/p1', 'pat%69ent=p2', 'beneficiary=p2']) {
      await refused(await call(`/ehr/Observation?${q}`, p1));
    }
    assert.equal(ehrCalls(), before);
  });

  test("reading another patient's resource by id is refused (403, or 404 when configured to hide it)", async () => {
    assert.equal((await call('/ehr/Observation/obs-p1-hr', p1)).status, 200);
    await refused(await call('/ehr/Observation/obs-p2-phq9', p1), 403, /another patient/);
    assert.equal((await call('/ehr/Encounter/e-p1-1', p1)).status, 200);
    const hidden = await refused(await call('/ehr/Encounter/e-p2-2', p1), 404);
    assert.equal(hidden.type, 'https://hcgw.dev/problems/not-found');
    assert.equal((await call('/ehr/Observation/nope', p1)).status, 404, 'upstream errors pass as they are');
  });

  test('a Bundle from an upstream that ignores the patient parameter loses every entry not provably the patient’s', async () => {
    const res = await call('/hostile/Observation', p1);
    const b = await bundle(res);
    assert.deepEqual(
      b.entry!.map((e) => `${e.resource.resourceType}/${e.resource.id}`),
      ['Observation/mine-1', 'Observation/mine-2', 'Patient/p1', 'Practitioner/pr-1'],
    );
    assert.equal(b.total, undefined, 'the page held includes besides matches: total is dropped, not guessed');
    assert.ok(!JSON.stringify(b).includes('theirs-1'));
    const asked = new URL(hostile.requests[hostile.requests.length - 1].url, 'http://x');
    assert.equal(asked.searchParams.get('patient'), 'p1', 'the patient parameter was still added');
    assert.equal(hostile.requests[hostile.requests.length - 1].headers.accept, 'application/fhir+json');
    const forClinician = await bundle(await call('/hostile/Observation', clinician));
    assert.equal(forClinician.entry!.length, MIXED_BUNDLE.entry.length, 'tokens without a patient context are not filtered');
  });

  test('a Bundle holding every match gets its total corrected', async () => {
    const b = await bundle(await call('/hostile/Encounter', p1));
    assert.deepEqual(b.entry!.map((e) => e.resource.id), ['enc-p1']);
    assert.equal(b.total, 1);
  });

  test('a single foreign or unattributable resource from the upstream is refused', async () => {
    await refused(await call('/hostile/Observation/theirs-1', p1));
    await refused(await call('/hostile/Observation/trimmed', p1), 403, /another patient/);
  });

  test('plain JSON lists (`{data, total}`) are filtered too', async () => {
    const res = await call('/hostile/claims', p1);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { data: [{ id: 'c1', patient: 'Patient/p1' }], total: 1 });
  });

  test('non-JSON formats are refused so that responses stay filterable', async () => {
    await refused(await call('/ehr/Observation?_format=xml', p1), 400);
    await refused(await call('/ehr/Observation?_format=application/fhir%2Bxml', p1), 400);
    assert.equal((await call('/ehr/Observation?_format=json', p1)).status, 200);
  });

  test('writes: bodies must reference the patient, and an existing resource of another patient cannot be taken over', async () => {
    const forOther = JSON.stringify({ ...obs('x', { reference: 'Patient/p2' }), id: undefined });
    await refused(await call('/ehr/Observation', p1, { method: 'POST', body: forOther }));
    for (const smuggled of [
      { focus: [{ reference: 'Patient/p2' }] },
      { contained: [{ resourceType: 'Patient', id: 'c1', link: [{ other: { reference: 'Patient/p2' } }] }] },
      { contained: [{ id: 'no-type', subject: { reference: 'Patient/p2' } }] },
      { performer: [{ reference: 'urn:uuid:nowhere' }] },
    ]) {
      const body = JSON.stringify({ ...obs('x', { reference: 'Patient/p1' }), id: undefined, ...smuggled });
      await refused(await call('/ehr/Observation', p1, { method: 'POST', body }));
    }
    const created = await call('/ehr/Observation', p1, { method: 'POST', body: JSON.stringify({ ...obs('x', { reference: 'Patient/p1' }), id: undefined }) });
    assert.equal(created.status, 201);
    const takeover = JSON.stringify(obs('obs-p2-hr', { reference: 'Patient/p1' }));
    await refused(await call('/ehr/Observation/obs-p2-hr', p1, { method: 'PUT', body: takeover }));
    const check = await call('/ehr/Observation/obs-p2-hr', clinician);
    assert.equal(((await check.json()) as { subject: { reference: string } }).subject.reference, 'Patient/p2', "the other patient's record is unchanged");
    const move = JSON.stringify(obs('obs-p1-wt', { reference: 'Patient/p2' }));
    await refused(await call('/ehr/Observation/obs-p1-wt', p1, { method: 'PUT', body: move }));
    assert.equal((await call('/ehr/Observation/obs-p1-wt', p1, { method: 'PUT', body: JSON.stringify(obs('obs-p1-wt', { reference: 'Patient/p1' })) })).status, 200);
  });

  test('a write is refused when the existing resource the upstream answers as FHIR is not a resource (untyped)', async () => {
    const before = hostile.requests.length;
    await refused(await call('/hostile/Observation/untyped', p1, { method: 'PUT', body: JSON.stringify(obs('untyped', { reference: 'Patient/p1' })) }));
    assert.deepEqual(hostile.requests.slice(before).map((r) => r.method), ['GET'], 'only the pre-read reached the upstream');
  });

  test('patient scopes without a patient context are refused; user tokens are not confined', async () => {
    const noContext = await idp.mint({ clientId: 'broken-app', scopes: ['patient/*.rs'] });
    const p = await refused(await call('/ehr/Observation', noContext));
    assert.equal(p.detail, 'Patient-level scopes need a patient launch context');
    assert.equal((await call('/ehr/Patient/p2', clinician)).status, 200);
    assert.equal((await bundle(await call('/ehr/Observation?patient=p2', clinician))).total, 5);
  });
});

describe('patient-compartment: configuration', () => {
  test('a route without `fhir` and unknown keys are refused at load', async () => {
    const file = writeConfig(`version: 1
upstreams:
  up: { url: "http://127.0.0.1:1" }
routes:
  - { id: a, layer: system, match: { path: /a }, target: { upstream: up, path: /a }, policies: [ { patient-compartment: {} } ] }
  - { id: b, layer: system, match: { path: /b }, fhir: { resourceType: Observation, interaction: read }, target: { upstream: up, path: /b }, policies: [ { patient-compartment: { foreignRead: teapot, searchParam: [x] } } ] }
`);
    const text = (await configIssues({ file })).join('\n');
    assert.match(text, /routes\[0\]\.policies\[0\]\.patient-compartment: patient-compartment needs the route's `fhir/);
    assert.match(text, /routes\[1\]\.policies\[0\]\.patient-compartment\.foreignRead: must be one of: forbidden, not-found/);
    assert.match(text, /routes\[1\]\.policies\[0\]\.patient-compartment\.searchParam: unknown key/);
  });
});
