import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startIdp, type DevIdp } from '../gateway/sandbox/index.ts';
import { configIssues, problem, startGateway, startUpstream, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

const LAB = 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory';
const VITALS = 'http://terminology.hl7.org/CodeSystem/observation-category|vital-signs';

function route(id: string, method: string, path: string, policy: string, fhir?: string) {
  return `
  - id: ${id}
    layer: system
    match: { methods: [${method}], path: ${path} }${fhir ? `\n    fhir: { ${fhir} }` : ''}
    target: { upstream: up, path: ${path.replace('/portal', '')} }
    policies:
      - jwt: { issuers: [dev] }
      - scopes: ${policy}`;
}

describe('scopes policy: OAuth scopes, claim conditions and SMART on FHIR', () => {
  let idp: DevIdp;
  let up: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    idp = await startIdp({ port: 0 });
    up = await startUpstream();
    gw = await startGateway(`version: 1
identity:
  issuers:
    - { name: dev, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }
upstreams:
  up: { url: "${up.url}" }
routes:${route('all', 'GET', '/all', '{ allOf: [billing.read, claims.read] }')}${route('any', 'GET', '/any', '{ anyOf: [erp.read, erp.write] }')}${route(
      'role',
      'GET',
      '/role',
      '{ claims: { role: [clinician, nurse], realm_access.roles: [ehr-user] } }',
    )}${route('obs-search', 'GET', '/Observation', '{ smart: true }', 'resourceType: Observation, interaction: search')}${route(
      'obs-post-search',
      'POST',
      '/Observation/_search',
      '{ smart: true }',
      'resourceType: Observation, interaction: search',
    )}${route('obs-read', 'GET', '/Observation/:id', '{ smart: true }', 'resourceType: Observation, interaction: read')}${route(
      'obs-create',
      'POST',
      '/Observation',
      '{ smart: true }',
      'resourceType: Observation, interaction: create',
    )}${route('obs-delete', 'DELETE', '/Observation/:id', '{ smart: true }', 'resourceType: Observation, interaction: delete')}${route(
      'portal-search',
      'GET',
      '/portal/Observation',
      '{ smart: true, smartContexts: [patient] }',
      'resourceType: Observation, interaction: search',
    )}
`);
  });
  after(async () => {
    await gw?.close();
    await Promise.all([idp?.close(), up?.close()]);
  });

  const as = async (scopes: string[], claims: Record<string, unknown> = {}) => idp.mint({ clientId: 'app', scopes, claims });
  const call = async (method: string, path: string, token: string, body?: string) =>
    fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/fhir+json' } : {}) }, body });
  /** The query the upstream received for the last request. */
  const upstreamQuery = () => new URL(up.requests[up.requests.length - 1].url, 'http://x').searchParams;

  async function refusedForScope(res: Response, scope: string) {
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('www-authenticate'), `Bearer realm="hcgw", error="insufficient_scope", scope="${scope}"`);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/insufficient-scope');
    assert.equal(p.scope, scope);
    return p;
  }

  test('allOf needs every scope; anyOf needs one; the missing scopes are named', async () => {
    assert.equal((await call('GET', '/all', await as(['billing.read', 'claims.read', 'x']))).status, 200);
    await refusedForScope(await call('GET', '/all', await as(['billing.read'])), 'claims.read');
    assert.equal((await call('GET', '/any', await as(['erp.write']))).status, 200);
    await refusedForScope(await call('GET', '/any', await as(['erp.readonly'])), 'erp.read erp.write');
  });

  test('claim conditions: one accepted value per claim, list claims and nested claims', async () => {
    const ok = await as([], { role: ['admin', 'nurse'], realm_access: { roles: ['ehr-user'] } });
    assert.equal((await call('GET', '/role', ok)).status, 200);
    for (const claims of [{ role: 'admin', realm_access: { roles: ['ehr-user'] } }, { role: 'nurse' }, { role: 'nurse', realm_access: { roles: ['other'] } }, {}]) {
      const res = await call('GET', '/role', await as([], claims));
      assert.equal(res.status, 403, JSON.stringify(claims));
      const p = await problem(res);
      assert.equal(p.type, 'https://hcgw.dev/problems/forbidden');
      assert.ok(!JSON.stringify(p).includes('admin'), 'claim values are not echoed');
    }
  });

  test('SMART v1 scopes: read covers read and search, write covers create/update/delete, * both', async () => {
    const v1read = await as(['patient/Observation.read']);
    assert.equal((await call('GET', '/Observation', v1read)).status, 200);
    assert.equal((await call('GET', '/Observation/o1', v1read)).status, 200);
    await refusedForScope(await call('POST', '/Observation', v1read, '{}'), 'patient/Observation.c user/Observation.c system/Observation.c');
    const v1write = await as(['user/Observation.write']);
    assert.equal((await call('POST', '/Observation', v1write, '{}')).status, 200);
    assert.equal((await call('DELETE', '/Observation/o1', v1write)).status, 200);
    await refusedForScope(await call('GET', '/Observation/o1', v1write), 'patient/Observation.r user/Observation.r system/Observation.r');
    const all = await as(['user/*.*']);
    for (const [m, p] of [['GET', '/Observation'], ['GET', '/Observation/o1'], ['POST', '/Observation'], ['DELETE', '/Observation/o1']]) {
      assert.equal((await call(m, p, all, m === 'POST' ? '{}' : undefined)).status, 200, `${m} ${p}`);
    }
  });

  test('SMART v2 scopes: c r u d s letters, resource type or *, and nothing that is not a well-formed scope', async () => {
    const rs = await as(['patient/Observation.rs']);
    assert.equal((await call('GET', '/Observation', rs)).status, 200);
    assert.equal((await call('GET', '/Observation/o1', rs)).status, 200);
    const readOnly = await as(['patient/Observation.r']);
    await refusedForScope(await call('GET', '/Observation', readOnly), 'patient/Observation.s user/Observation.s system/Observation.s');
    assert.equal((await call('GET', '/Observation/o1', readOnly)).status, 200);
    assert.equal((await call('DELETE', '/Observation/o1', await as(['system/*.cruds']))).status, 200);
    assert.equal((await call('DELETE', '/Observation/o1', await as(['system/Observation.d']))).status, 200);
    for (const s of ['user/Encounter.cruds', 'patient/Observation.sr', 'patient/observation.rs', 'Observation.rs', 'patient/Observation.', 'patient/Observation.read?category=x', 'patient/Observation.rs?']) {
      assert.equal((await call('GET', '/Observation', await as([s]))).status, 403, s);
    }
  });

  test('smartContexts restricts which SMART contexts may grant', async () => {
    assert.equal((await call('GET', '/portal/Observation', await as(['patient/Observation.rs']))).status, 200);
    await refusedForScope(await call('GET', '/portal/Observation', await as(['user/Observation.rs', 'system/*.rs'])), 'patient/Observation.s');
  });

  test('a v2 scope with ?category= grants only searches constrained to it; the gateway adds the category', async () => {
    const lab = await as([`patient/Observation.rs?category=${LAB}`]);
    assert.equal((await call('GET', '/Observation?code=1234-5', lab)).status, 200);
    assert.deepEqual(upstreamQuery().getAll('category'), [LAB], 'added when absent');
    assert.equal(upstreamQuery().get('code'), '1234-5');
    assert.equal((await call('GET', `/Observation?category=${encodeURIComponent(LAB)}`, lab)).status, 200);
    assert.deepEqual(upstreamQuery().getAll('category'), [LAB], 'kept when equal');
    for (const q of [`category=${encodeURIComponent(VITALS)}`, `category=${encodeURIComponent(LAB)}&category=${encodeURIComponent(VITALS)}`, `category=${encodeURIComponent(`${LAB},${VITALS}`)}`]) {
      const before = up.requests.length;
      const res = await call('GET', `/Observation?${q}`, lab);
      await refusedForScope(res, 'patient/Observation.s user/Observation.s system/Observation.s');
      assert.equal(up.requests.length, before, `${q} never reaches the upstream`);
    }
    const read = await call('GET', '/Observation/o1', lab);
    assert.equal((await refusedForScope(read, 'patient/Observation.r user/Observation.r system/Observation.r')).detail, 'The granted scope allows this only for searches constrained as the scope says');
  });

  test('several constrained grants on one parameter are an OR; an unconstrained grant needs no constraint', async () => {
    const both = await as([`patient/Observation.rs?category=${LAB}`, `patient/Observation.rs?category=${VITALS}`]);
    assert.equal((await call('GET', '/Observation', both)).status, 200);
    assert.deepEqual(upstreamQuery().getAll('category'), [`${LAB},${VITALS}`]);
    assert.equal((await call('GET', `/Observation?category=${encodeURIComponent(VITALS)}`, both)).status, 200);
    assert.equal((await call('GET', `/Observation?category=${encodeURIComponent(`${VITALS},${LAB}`)}`, both)).status, 200);
    assert.equal((await call('GET', `/Observation?category=${encodeURIComponent(`${VITALS},other`)}`, both)).status, 403);
    const plus = await as([`patient/Observation.rs?category=${LAB}`, 'patient/Observation.s']);
    assert.equal((await call('GET', '/Observation', plus)).status, 200);
    assert.equal(upstreamQuery().get('category'), null, 'not constrained when an unconstrained scope grants');
  });

  test('searches reaching other resource types need a wildcard scope', async () => {
    const narrow = await as(['patient/Observation.rs']);
    for (const q of ['_include=Observation:subject', '_revinclude=Provenance:target', '_has:Condition:subject:code=x', 'subject.name=Smith', '_include:iterate=Observation:subject']) {
      const res = await call('GET', `/Observation?${q}`, narrow);
      assert.equal(res.status, 403, q);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/forbidden');
    }
    assert.equal((await call('GET', '/Observation?_include=Observation:subject', await as(['user/*.rs']))).status, 200);
  });

  test('search parameters are read from the query only: a POST _search body is refused', async () => {
    const res = await fetch(`${gw.url}/Observation/_search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await as([`patient/Observation.rs?category=${LAB}`])}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'category=other',
    });
    assert.equal(res.status, 400);
    assert.equal((await problem(res)).detail, 'Search parameters are accepted only in the query string');
  });

  test('a chain with scopes but no jwt above it is refused at load (it could never authorize anyone)', async () => {
    const file = writeConfig(`version: 1
upstreams:
  up: { url: "http://127.0.0.1:1" }
routes:
  - { id: r, layer: system, match: { path: /no-jwt }, target: { upstream: up, path: /no-jwt }, policies: [ { scopes: { allOf: [a] } } ] }
`);
    assert.match((await configIssues({ file })).join('\n'), /routes\[0\]\.policies\[0\]\.scopes: `scopes` needs `principal`, which no policy above it provides: add `jwt` above `scopes`/);
  });
});

describe('scopes policy: configuration mistakes stop start-up', () => {
  async function issues(policy: string, fhir = ''): Promise<string> {
    const file = writeConfig(`version: 1
identity: { issuers: [{ name: idp, issuer: https://idp.example, secret: "0123456789abcdef0123456789abcdef", algorithms: [HS256], audiences: [api] }] }
upstreams:
  up: { url: "http://127.0.0.1:1" }
routes:
  - { id: r, layer: system, match: { path: /r }, ${fhir} target: { upstream: up, path: /r }, policies: [ { jwt: { issuers: [idp] } }, { scopes: ${policy} } ] }
`);
    return (await configIssues({ file })).join('\n');
  }

  test('valid configs compile', async () => {
    assert.equal(await issues('{ allOf: [a] }'), '');
    assert.equal(await issues('{ smart: true, smartContexts: [user] }', 'fhir: { resourceType: Observation, interaction: read },'), '');
  });

  test('smart: true on a route without fhir, an empty config, malformed scopes and unknown keys are errors', async () => {
    assert.match(await issues('{ smart: true }'), /routes\[0\]\.policies\[1\]\.scopes\.smart: smart: true needs the route's `fhir/);
    assert.match(await issues('{}'), /routes\[0\]\.policies\[1\]\.scopes: configure at least one of allOf, anyOf, claims or smart/);
    assert.match(await issues('{ allOf: ["two words"] }'), /scopes\.allOf\[0\]: must match pattern/);
    assert.match(await issues('{ anyOf: [a], smartContext: [user] }'), /scopes\.smartContext: unknown key/);
    assert.match(await issues('{ smart: true, smartContexts: [admin] }', 'fhir: { resourceType: Observation, interaction: read },'), /smartContexts\[0\]: must be one of/);
  });
});
