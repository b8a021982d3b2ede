import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';
import { assertIssues, configIssues, problem, startSandboxGateway, type SandboxGateway } from './helpers.ts';

const fhirSection = (tokenUrl: string) => `fhir:
  servers:
    - base: /fhir
      name: Governed EHR
      smart: { issuer: sandbox-idp, tokenEndpoint: "${tokenUrl}", scopesSupported: [system/Patient.rs, system/Observation.rs] }
    - base: /portal/fhir
      smart: { issuer: sandbox-idp, tokenEndpoint: "${tokenUrl}", authorizationEndpoint: "https://login.hcgw.test/authorize" }
`;
const routes = `routes:
  - id: patient-read
    layer: system
    match: { methods: [GET], path: /fhir/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: ehr, path: /Patient/:id }
    policies: [{ jwt: { issuers: [sandbox-idp] } }, { scopes: { smart: true, smartContexts: [system] } }]
  - id: observation-search
    layer: system
    match: { methods: [GET], path: /fhir/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - scopes: { smart: true, smartContexts: [system] }
      - validate: { query: { type: object, additionalProperties: false, properties: { patient: { type: string }, code: { type: string, pattern: "^[^|]*\\\\|[^|]+$" }, date: { type: string, format: date }, _count: { type: string } } } }
  - id: portal-patient
    layer: system
    match: { methods: [GET], path: /portal/fhir/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: ehr, path: /Patient/:id }
    policies: [{ jwt: { issuers: [sandbox-idp] } }, { scopes: { smart: true, smartContexts: [patient] } }, { patient-compartment: {} }]
  - id: billing
    layer: system
    match: { methods: [GET], path: /billing/claims }
    target: { upstream: billing, path: /claims }
    policies: [{ jwt: { issuers: [sandbox-idp] } }]
`;

describe('SMART / FHIR discovery and conformance', () => {
  let s: SandboxGateway;
  before(async () => {
    s = await startSandboxGateway((sb) => fhirSection(sb.idp.tokenEndpoint) + routes);
  });
  after(async () => s?.close());

  test('a real FHIR client (fhir-kit-client) discovers the token endpoint, gets a token and reads a Patient', async () => {
    const client = new Client({ baseUrl: `${s.gw.url}/fhir` });
    const auth = await client.smartAuthMetadata();
    assert.equal(String(auth.tokenUrl), s.sb.idp.tokenEndpoint);
    // client_credentials at the discovered endpoint (SMART Backend Services style, here with the dev secret)
    const res = await fetch(String(auth.tokenUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('clinician-app:clinician-app-secret').toString('base64')}` },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'user/Patient.rs' }),
    });
    assert.equal(res.status, 200);
    const token = ((await res.json()) as { access_token: string }).access_token;
    const system = await s.token({ clientId: 'ehr-batch', scopes: 'system/Patient.rs' });
    client.bearerToken = system;
    const patient = (await client.read({ resourceType: 'Patient', id: 'p1' })) as { resourceType: string; id: string };
    assert.equal(patient.resourceType, 'Patient');
    assert.equal(patient.id, 'p1');
    // The user-context token is refused on this system-only route: as an OperationOutcome, since the client speaks FHIR.
    client.bearerToken = token;
    await assert.rejects(client.read({ resourceType: 'Patient', id: 'p1' }), (err: { response?: { status: number; data: { resourceType: string; issue: Array<{ code: string }> } } }) => {
      assert.equal(err.response?.status, 403);
      assert.equal(err.response?.data.resourceType, 'OperationOutcome');
      assert.equal(err.response?.data.issue[0].code, 'forbidden');
      return true;
    });
  });

  test('smart-configuration: issuer, JWKS and endpoints from config; default scopes from the routes', async () => {
    const a = (await (await fetch(`${s.gw.url}/fhir/.well-known/smart-configuration`)).json()) as Record<string, any>;
    assert.equal(a.issuer, s.sb.idp.issuer);
    assert.equal(a.jwks_uri, s.sb.idp.jwksUri);
    assert.equal(a.token_endpoint, s.sb.idp.tokenEndpoint);
    assert.deepEqual(a.scopes_supported, ['system/Patient.rs', 'system/Observation.rs']);
    assert.ok(a.capabilities.includes('client-confidential-asymmetric'));
    assert.equal(a.authorization_endpoint, undefined);
    const b = (await (await fetch(`${s.gw.url}/portal/fhir/.well-known/smart-configuration`)).json()) as Record<string, any>;
    assert.equal(b.authorization_endpoint, 'https://login.hcgw.test/authorize');
    assert.deepEqual(b.scopes_supported, ['patient/Patient.r']);
    // Two groups: no root document (it would be ambiguous).
    assert.equal((await fetch(`${s.gw.url}/.well-known/smart-configuration`)).status, 404);
  });

  test('CapabilityStatement lists only the governed interactions and search parameters', async () => {
    const res = await fetch(`${s.gw.url}/fhir/metadata`, { headers: { accept: 'application/fhir+json' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/fhir\+json/);
    const cs = (await res.json()) as Record<string, any>;
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    assert.equal(cs.implementation.url, `${s.gw.url}/fhir`);
    const resources = cs.rest[0].resource as Array<Record<string, any>>;
    assert.deepEqual(resources.map((r) => r.type), ['Observation', 'Patient'], 'no Encounter, no Claim: not governed here');
    assert.deepEqual(resources[0].interaction, [{ code: 'search-type' }]);
    assert.deepEqual(resources[0].searchParam, [{ name: '_count', type: 'string' }, { name: 'code', type: 'token' }, { name: 'date', type: 'date' }, { name: 'patient', type: 'string' }]);
    assert.deepEqual(resources[1].interaction, [{ code: 'read' }]);
    assert.equal(resources[1].searchParam, undefined);
    const oauth = cs.rest[0].security.extension[0];
    assert.equal(oauth.url, 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
    assert.deepEqual(oauth.extension, [{ url: 'token', valueUri: s.sb.idp.tokenEndpoint }]);
    const portal = (await (await fetch(`${s.gw.url}/portal/fhir/metadata`)).json()) as Record<string, any>;
    assert.deepEqual(portal.rest[0].resource.map((r: { type: string }) => r.type), ['Patient']);
  });

  test('errors under a FHIR base: OperationOutcome for FHIR clients, problem+json for the others, same code', async () => {
    for (const path of ['/fhir/Patient/p1', '/fhir/Nothing']) {
      const fhirRes = await fetch(`${s.gw.url}${path}`, { headers: { accept: 'application/fhir+json' } });
      assert.match(fhirRes.headers.get('content-type') ?? '', /^application\/fhir\+json/);
      const oo = (await fhirRes.json()) as Record<string, any>;
      assert.equal(oo.resourceType, 'OperationOutcome');
      const plain = await fetch(`${s.gw.url}${path}`, { headers: { accept: 'application/json' } });
      assert.equal(plain.status, fhirRes.status);
      const p = await problem(plain);
      assert.equal(`https://hcgw.dev/problems/${oo.issue[0].details.coding[0].code}`, p.type);
      assert.equal(oo.issue[0].diagnostics, p.detail);
    }
    const unauth = (await (await fetch(`${s.gw.url}/fhir/Patient/p1`, { headers: { accept: 'application/fhir+json' } })).json()) as Record<string, any>;
    assert.equal(unauth.issue[0].code, 'login');
    const viaFormat = await fetch(`${s.gw.url}/fhir/Patient/p1?_format=json`);
    assert.equal(((await viaFormat.json()) as { resourceType: string }).resourceType, 'OperationOutcome');
    // Outside a FHIR base nothing changes.
    const billing = await fetch(`${s.gw.url}/billing/claims`, { headers: { accept: 'application/fhir+json' } });
    assert.equal(billing.headers.get('content-type'), 'application/problem+json');
  });

  test('FHIR XML (Accept or _format) → 406, never a silent JSON answer; JSON variants pass', async () => {
    const token = await s.token({ clientId: 'ehr-batch', scopes: 'system/Patient.rs' });
    const call = (q: string, accept?: string) => s.call(`/fhir/Patient/p1${q}`, token, { headers: accept ? { accept } : {} });
    for (const [q, accept] of [['', 'application/fhir+xml'], ['', 'application/xml'], ['', 'text/xml;q=1, application/fhir+json;q=0'], ['?_format=xml', undefined], ['?_format=application/fhir%2Bxml', undefined], ['?_format=text/xml', undefined], ['?_format=ttl', undefined], ['?_format=json&_format=xml', undefined]] as const) {
      const res = await call(q, accept);
      assert.equal(res.status, 406, `${q} ${accept}`);
      // _format=json first: a FHIR client, answered in its dialect; the others cannot read FHIR JSON at all
      const body = (await res.json()) as Record<string, any>;
      const code = body.resourceType === 'OperationOutcome' ? body.issue[0].details.coding[0].code : String(body.type).split('/').pop();
      assert.equal(code, 'not-acceptable');
    }
    for (const [q, accept] of [['', 'application/fhir+json'], ['', 'application/json'], ['', '*/*'], ['?_format=json', undefined], ['?_format=application/fhir%2Bjson', undefined], ['', 'application/fhir+xml;q=0.9, application/fhir+json']] as const) {
      assert.equal((await call(q, accept)).status, 200, `${q} ${accept}`);
    }
    assert.equal((await fetch(`${s.gw.url}/fhir/metadata?_format=xml`)).status, 406);
  });
});

describe('fhir section: configuration errors', () => {
  test('unknown SMART issuer, overlapping bases, a base without routes → every issue at load', async () => {
    const issues = await configIssues(`version: 1
identity: { issuers: [{ name: idp, issuer: "https://idp.test", audiences: [a], algorithms: [RS256], jwksUri: "https://idp.test/jwks" }] }
upstreams: { ehr: { url: "http://127.0.0.1:1" } }
fhir:
  servers:
    - { base: /fhir, smart: { issuer: nobody, tokenEndpoint: "https://idp.test/token" } }
    - { base: /fhir/r4 }
    - { base: /empty }
    - { base: "bad base" }
routes:
  - { id: p, layer: system, match: { path: /fhir/Patient/:id }, fhir: { resourceType: Patient, interaction: read }, target: { upstream: ehr, path: /Patient/:id } }
`);
    assertIssues(issues, [/fhir\.servers\[0\]\.smart\.issuer: unknown issuer "nobody"/, /fhir\.servers\[1\]\.base: overlaps another FHIR base/, /fhir\.servers\[2\]\.base: no route/, /fhir\.servers\[3\]\.base/]);
  });
});
