import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../gateway/config/load.ts';
import { buildOpenApi } from '../gateway/cli/openapi.ts';
import { writeConfig, tempDir } from './helpers.ts';

/** `hcgw openapi`: the governed surface of routes.yaml as an OpenAPI 3.1 document partners can generate clients from. */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCHEMAS = fileURLToPath(new URL('../schemas/', import.meta.url));
const run = promisify(execFile);
type Doc = Record<string, any>;

async function cli(...args: string[]) {
  return run(process.execPath, [join(ROOT, 'bin/hcgw.js'), 'openapi', ...args], { cwd: ROOT }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

async function assertValid(doc: Doc) {
  const result = await new Validator().validate(doc);
  assert.deepEqual(result, { valid: true }, JSON.stringify(result.errors ?? '', null, 1)?.slice(0, 2000));
  // Every internal reference must land on something (the validator checks the shape, this the targets).
  const refs: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) k === '$ref' && typeof x === 'string' ? refs.push(x) : walk(x);
  };
  walk(doc);
  for (const ref of refs) {
    assert.ok(ref.startsWith('#/'), `external reference ${ref}`);
    const target = ref.slice(2).split('/').reduce<unknown>((o, seg) => (o as Record<string, unknown> | undefined)?.[decodeURIComponent(seg).replace(/~1/g, '/').replace(/~0/g, '~')], doc);
    assert.ok(target !== undefined, `dangling reference ${ref}`);
  }
}

function build(yaml: string): Doc {
  const file = writeConfig(yaml);
  return buildOpenApi(parseConfig(readFileSync(file, 'utf8'), file).config, file);
}

const operations = (doc: Doc) => Object.entries(doc.paths as Record<string, Record<string, Doc>>).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method, op })));

describe('hcgw openapi', () => {
  test('the sandbox routes.yaml exports a valid OpenAPI 3.1 document covering every route', async () => {
    const out = join(tempDir('hcgw-openapi-'), 'api.json');
    const r = await cli('routes.yaml', '--out', out, '--server', 'https://api.hospital.example');
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(readFileSync(out, 'utf8')) as Doc;
    await assertValid(doc);
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(doc.servers, [{ url: 'https://api.hospital.example' }]);
    const { config } = parseConfig(readFileSync(join(ROOT, 'routes.yaml'), 'utf8'), 'routes.yaml');
    const ops = operations(doc);
    for (const route of config.routes) assert.ok(ops.some((o) => o.op['x-hcgw-route'] === route.id), `route ${route.id} missing`);
    const read = doc.paths['/system/ehr/Patient/{id}'].get;
    assert.deepEqual(read.parameters[0], { name: 'id', in: 'path', required: true, description: 'Path parameter id', schema: { type: 'string' } });
    assert.deepEqual(read.tags, ['system']);
    assert.equal(read['x-hcgw-layer'], 'system');
    assert.equal(new Set(ops.map((o) => o.op.operationId)).size, ops.length, 'operationIds are unique');
  });

  test('YAML output, and the same document on stdout', async () => {
    const out = join(tempDir('hcgw-openapi-'), 'api.yaml');
    assert.equal((await cli('routes.yaml', '--out', out)).code, 0);
    const fromYaml = parseYaml(readFileSync(out, 'utf8')) as Doc;
    const fromStdout = JSON.parse((await cli('routes.yaml')).stdout) as Doc;
    assert.deepEqual(fromYaml, fromStdout);
  });

  test('an invalid routes.yaml is refused with its errors, and no document', async () => {
    const file = writeConfig('version: 1\nroutes:\n  - { id: x, layer: system, match: { path: /x }, target: { upstream: nowhere, path: /x } }\n');
    const r = await cli(file);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown upstream "nowhere"/);
    assert.equal(r.stdout, '');
  });

  const CONFIG = `
version: 1
server: { admin: { port: 0, token: "admin-token-never-in-openapi-0123" } }
identity:
  issuers:
    - { name: hospital-idp, issuer: "https://idp.hospital.example", jwksUri: "https://idp.hospital.example/jwks", audiences: [api], algorithms: [RS256] }
    - { name: lab-legacy, issuer: lab, audiences: [api], algorithms: [HS256], secret: "hs-secret-never-in-openapi-0123456789" }
    - name: partner
      issuer: https://partner.example
      introspection: { url: "https://partner.example/introspect", clientId: hcgw, clientSecret: "introspection-secret-never-in-openapi" }
audit:
  hashKey: audit-key-never-in-openapi-0123456789abcdef
  sinks: [ { kind: http, url: "https://siem.example/in", headers: { authorization: "Bearer siem-token-never-in-openapi" } } ]
minimization:
  profiles: { clinical: { resources: { Observation: [id, status] } } }
upstreams:
  ehr: { url: "https://ehr.internal.example/fhir" }
routes:
  - id: obs-create
    layer: system
    description: Record an observation
    match: { methods: [POST], path: /fhir/Observation }
    fhir: { resourceType: Observation, interaction: create }
    target: { upstream: ehr, path: /Observation }
    policies:
      - audit: {}
      - jwt: { issuers: [hospital-idp, partner] }
      - scopes: { smart: true, smartContexts: [user, system] }
      - validate: { body: { $ref: "${SCHEMAS}fhir/Observation.json" } }
  - id: obs-search
    layer: system
    match: { methods: [GET], path: /fhir/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [hospital-idp] }
      - scopes: { allOf: [fhir.read], anyOf: [ward.a, ward.b] }
      - rate-limit: { key: client, limit: 10, window: 1s }
      - minimize: { purposeOfUse: { required: true, allowed: [TREAT] }, select: [ { profile: clinical } ] }
      - validate:
          query:
            type: object
            required: [patient]
            properties:
              patient: { $ref: "#/$defs/id" }
              _count: { type: string, pattern: "^[0-9]+$" }
            $defs: { id: { type: string, pattern: "^[A-Za-z0-9-]+$" } }
          headers: { type: object, properties: { X-Ward: { type: string }, Accept: { type: string } } }
  - id: lab-result
    layer: experience
    match: { methods: [GET, HEAD], path: "/lab/:kind{/:id}" }
    target: { upstream: ehr, path: /Observation }
    policies: [ { jwt: { issuers: [lab-legacy] } } ]
  - id: open-metadata
    layer: system
    match: { path: /fhir/metadata }
    target: { upstream: ehr, path: /metadata }
`;

  test('validate schemas are bundled into components (files, their references, local $defs)', async () => {
    const doc = build(CONFIG);
    await assertValid(doc);
    const create = doc.paths['/fhir/Observation'].post;
    const body = create.requestBody.content['application/fhir+json'].schema;
    assert.deepEqual(create.requestBody.content['application/json'].schema, body);
    const schemas = doc.components.schemas as Record<string, Doc>;
    // $defs of each bundled file are hoisted into components of their own (`<file>.<def>`), so linters see them used.
    assert.ok(schemas.Observation && schemas['datatypes.CodeableConcept'] && schemas['Resource.meta'], Object.keys(schemas).join(', '));
    assert.match(JSON.stringify(schemas.Observation), /"#\/components\/schemas\/datatypes\.CodeableConcept"/);
    assert.ok(!JSON.stringify(doc).includes('file://'), 'no local file URL leaks into the document');
    const search = doc.paths['/fhir/Observation'].get;
    const param = (name: string) => search.parameters.find((p: Doc) => p.name === name);
    assert.equal(param('patient').in, 'query');
    assert.equal(param('patient').required, true);
    assert.match(param('patient').schema.$ref, /^#\/components\/schemas\/obs-search\.query\.id$/);
    assert.equal(param('_count').required, false);
    assert.equal(param('X-Ward').in, 'header');
    assert.equal(param('Accept'), undefined, 'OpenAPI ignores an Accept header parameter: not emitted');
    assert.deepEqual(param('X-Purpose-Of-Use'), { name: 'X-Purpose-Of-Use', in: 'header', required: true, description: param('X-Purpose-Of-Use').description, schema: { enum: ['TREAT'] } });
  });

  test('security: schemes from the jwt issuers, requirements from scopes; never a secret', async () => {
    const doc = build(CONFIG);
    const schemes = doc.components.securitySchemes as Record<string, Doc>;
    assert.deepEqual(Object.keys(schemes).sort(), ['hospital-idp', 'lab-legacy', 'partner']);
    assert.equal(schemes['hospital-idp'].type, 'openIdConnect');
    assert.equal(schemes['hospital-idp'].openIdConnectUrl, 'https://idp.hospital.example/.well-known/openid-configuration');
    assert.deepEqual([schemes['lab-legacy'].type, schemes['lab-legacy'].bearerFormat], ['http', 'JWT']);
    assert.deepEqual([schemes.partner.type, schemes.partner.bearerFormat], ['http', undefined], 'opaque tokens are not called JWTs');
    // SMART: any accepted context; several issuers: any of them.
    assert.deepEqual(doc.paths['/fhir/Observation'].post.security, [
      { 'hospital-idp': ['user/Observation.c'] },
      { 'hospital-idp': ['system/Observation.c'] },
      { partner: ['user/Observation.c'] },
      { partner: ['system/Observation.c'] },
    ]);
    // allOf in every alternative, one anyOf each.
    assert.deepEqual(doc.paths['/fhir/Observation'].get.security, [{ 'hospital-idp': ['fhir.read', 'ward.a'] }, { 'hospital-idp': ['fhir.read', 'ward.b'] }]);
    assert.deepEqual(doc.paths['/fhir/metadata'].get.security, [], 'a route without jwt says so explicitly');
    const text = JSON.stringify(doc);
    for (const secret of ['admin-token-never', 'hs-secret-never', 'introspection-secret-never', 'audit-key-never', 'siem-token-never', 'ehr.internal.example']) {
      assert.ok(!text.includes(secret), `${secret} leaked`);
    }
  });

  test('problem responses follow each chain; optional path groups give both paths', async () => {
    const doc = build(CONFIG);
    const statuses = (op: Doc) => Object.keys(op.responses).map(Number);
    const create = statuses(doc.paths['/fhir/Observation'].post);
    const search = statuses(doc.paths['/fhir/Observation'].get);
    const open = statuses(doc.paths['/fhir/metadata'].get);
    assert.ok(create.includes(201) && create.includes(413) && create.includes(415) && create.includes(401) && create.includes(403));
    assert.ok(search.includes(429) && search.includes(200) && !search.includes(413));
    assert.ok(!open.includes(401) && !open.includes(429) && open.includes(502) && open.includes(504));
    assert.deepEqual(doc.paths['/fhir/Observation'].get.responses['429'], { $ref: '#/components/responses/Problem429' });
    assert.equal(doc.components.responses.Problem429.content['application/problem+json'].schema.$ref, '#/components/schemas/Problem');
    assert.ok(doc.paths['/lab/{kind}'].get && doc.paths['/lab/{kind}/{id}'].head);
    assert.deepEqual(doc.paths['/lab/{kind}/{id}'].get.parameters.map((p: Doc) => p.name), ['kind', 'id']);
    await assertValid(doc);
  });
});
