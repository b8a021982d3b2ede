import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../gateway/config/errors.ts';
import { MAX_JSON_DEPTH } from '../gateway/lib/json-depth.ts';
import { parseConfig, problem, rawSocket, startSandboxGateway, type SandboxGateway } from './helpers.ts';

/**
 * Hostile request bodies against validate, minimize + consent and process-template routes of a sandbox
 * gateway running in this process (so that prototype pollution would show here): every answer is a 4xx
 * problem or a normal answer, never a 5xx of the gateway's own, never an echo of the input.
 */

const SCHEMAS = fileURLToPath(new URL('../schemas/', import.meta.url));
const MARKER = '<script>alert("hcgw")</script>';
const nestedArrays = (n: number) => '['.repeat(n) + ']'.repeat(n);
const nestedObjects = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const observation = (extra: string) => `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/p1"}${extra}}`;
const POLLUTION = '"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"}';

function assertNotPolluted() {
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getOwnPropertyNames(Object.prototype).includes('polluted'), false);
  assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
}

describe('hostile request bodies', () => {
  let sg: SandboxGateway;
  let token: string;
  const post = (path: string, body: string, contentType = 'application/json', headers: Record<string, string> = {}) =>
    sg.call(path, token, { method: 'POST', headers: { 'content-type': contentType, 'x-purpose-of-use': 'TREAT', ...headers }, body });
  /** The sandbox upstreams' request count: refused requests must never reach them. */
  const upstreamCalls = () => sg.sb.upstreams.ehr.stats().total + sg.sb.upstreams.erp.stats().total + sg.sb.upstreams.billing.stats().total;

  before(async () => {
    sg = await startSandboxGateway(
      () => `
server: { bodyLimit: 1mb }
minimization:
  profiles:
    clinical:
      resources:
        Observation: [id, status, code, subject]
routes:
  - id: observation-validated
    layer: system
    match: { methods: [POST], path: /system/ehr/Observation }
    fhir: { resourceType: Observation, interaction: create }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate:
          body: { $ref: "${SCHEMAS}fhir/Observation.json" }
          query: { type: object, properties: { note: { type: string, maxLength: 10 } } }
  - id: observation-loose
    layer: system
    match: { methods: [POST], path: /system/ehr/loose/Observation }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate: { body: { type: object, required: [resourceType] } }
  - id: observation-guarded
    layer: system
    match: { methods: [POST], path: /system/ehr/guarded/Observation }
    fhir: { resourceType: Observation, interaction: create }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - minimize: { select: [{ profile: clinical }] }
      - consent: { source: { upstream: ehr } }
  - id: supply-usage
    layer: process
    match: { methods: [POST], path: /process/encounters/:id/supply-usage }
    target:
      status: 201
      compose:
        - { name: inventory, upstream: erp, method: POST, path: "/inventory/{{body.itemId}}/decrement", body: { quantity: "{{body.quantity}}", note: "{{ body.note }}" } }
      merge: { stock: steps.inventory.body, request: body, first: "{{ query.tag }}" }
    policies:
      - jwt: { issuers: [sandbox-idp] }
`,
    );
    token = await sg.token({ clientId: 'clinician-app', scopes: 'user/*.rs erp.write' });
  });
  after(async () => {
    await sg.close();
    assertNotPolluted();
  });

  test('malformed JSON → 400 problem that echoes nothing of the body', async () => {
    for (const body of [`{"resourceType":"Observation","status":"${MARKER}"`, `${MARKER}`, '\uFEFF{"resourceType":"Observation"}', '{"a":1}{"b":2}', 'NaN', '{"a":1,}']) {
      const before = upstreamCalls();
      const res = await post('/system/ehr/Observation', body);
      assert.equal(res.status, 400, body);
      const text = JSON.stringify(await problem(res));
      assert.ok(!text.includes('script') && !text.includes('hcgw"'), text);
      assert.equal(upstreamCalls(), before);
    }
  });

  test('a body over server.bodyLimit → 413, whatever the route', async () => {
    const huge = observation(`,"note":[{"text":"${'x'.repeat(1_100_000)}"}]`);
    for (const path of ['/system/ehr/Observation', '/system/ehr/guarded/Observation', '/process/encounters/e-p1-1/supply-usage']) {
      const res = await post(path, huge);
      assert.equal(res.status, 413, path);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/payload-too-large');
    }
  });

  test('100 000 nested arrays or objects (within the body limit) → 400 before any policy or upstream', async () => {
    const deepBodies = [nestedArrays(100_000), observation(`,"extension":${nestedArrays(100_000)}`), observation(`,"valueString":${nestedObjects(50_000)}`), `{"itemId":"itm-100","quantity":${nestedArrays(100_000)}}`];
    for (const path of ['/system/ehr/Observation', '/system/ehr/loose/Observation', '/system/ehr/guarded/Observation', '/process/encounters/e-p1-1/supply-usage']) {
      for (const body of deepBodies) {
        const before = upstreamCalls();
        const res = await post(path, body, path.includes('guarded') ? 'application/fhir+json' : 'application/json');
        assert.equal(res.status, 400, path);
        const p = await problem(res);
        assert.equal(p.type, 'https://hcgw.dev/problems/bad-request');
        assert.match(String(p.detail), /nested deeper/);
        assert.equal(upstreamCalls(), before, `${path}: the upstream was not called`);
      }
    }
  });

  test(`nesting up to ${MAX_JSON_DEPTH} levels is not refused for its depth`, async () => {
    const res = await post('/system/ehr/loose/Observation', `{"resourceType":"Observation","deep":${nestedArrays(MAX_JSON_DEPTH - 1)}}`);
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    const deeper = await post('/system/ehr/loose/Observation', `{"resourceType":"Observation","deep":${nestedArrays(MAX_JSON_DEPTH)}}`);
    assert.equal(deeper.status, 400);
    await deeper.arrayBuffer();
  });

  test('brackets inside strings do not count as nesting', async () => {
    const res = await post('/system/ehr/loose/Observation', `{"resourceType":"Observation","note":"${'[{'.repeat(5000)}\\"${']}'.repeat(5000)}"}`);
    assert.equal(res.status, 201);
    await res.arrayBuffer();
  });

  test('wrong content types: a JSON-only route answers 415, a missing type is not parsed as JSON', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonx']) {
      const res = await post('/system/ehr/Observation', observation(''), type);
      assert.equal(res.status, 415, type);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/unsupported-media-type');
    }
    const noType = await sg.call('/system/ehr/Observation', token, { method: 'POST', body: new Blob([observation('')]) });
    assert.equal(noType.status, 415);
    await noType.arrayBuffer();
    const processNoJson = await post('/process/encounters/e-p1-1/supply-usage', '{"itemId":"itm-100","quantity":1}', 'text/plain');
    assert.equal(processNoJson.status, 415);
    await processNoJson.arrayBuffer();
  });

  test('an unknown property named with markup comes back percent-encoded in the violation pointer', async () => {
    const res = await post('/system/ehr/Observation', observation(`,"${MARKER.replace(/"/g, '\\"')}":1`));
    assert.equal(res.status, 400);
    const text = await res.text();
    assert.ok(!text.includes('<script'), text);
    assert.match(text, /%3Cscript%3E/);
  });

  test('__proto__, constructor and prototype keys pass validate, minimize, consent, templates and merges without polluting', async () => {
    assertNotPolluted();
    const validated = await post('/system/ehr/Observation', observation(`,${POLLUTION}`));
    assert.equal(validated.status, 400, 'the strict FHIR schema refuses unknown keys');
    await validated.arrayBuffer();
    const loose = await post('/system/ehr/loose/Observation', observation(`,${POLLUTION}`));
    assert.equal(loose.status, 201);
    await loose.arrayBuffer();
    // The EHR stores and returns the keys: the response phase (consent, then minimize) walks them.
    const guarded = await post('/system/ehr/guarded/Observation', observation(`,${POLLUTION}`), 'application/fhir+json');
    assert.equal(guarded.status, 201);
    const kept = (await guarded.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(kept).sort(), ['code', 'id', 'resourceType', 'status', 'subject']);
    const composed = await post('/process/encounters/e-p1-1/supply-usage?tag=a&__proto__[polluted]=yes&constructor[prototype][polluted]=yes', `{"itemId":"itm-100","quantity":1,"note":"n",${POLLUTION}}`);
    assert.equal(composed.status, 201);
    const merged = (await composed.json()) as { request: Record<string, unknown>; first: string };
    assert.equal(merged.first, 'a');
    assert.ok(Object.hasOwn(merged.request, '__proto__'), 'the key travels as data');
    assert.equal(Object.getPrototypeOf(merged.request), Object.prototype);
    const query = await post('/system/ehr/Observation?__proto__=x&constructor=y&note=ok', observation(''));
    assert.equal(query.status, 201);
    await query.arrayBuffer();
    const header = await rawSocket(sg.gw.url, [`POST /system/ehr/loose/Observation HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer ${token}\r\n__proto__: x\r\nConstructor: y\r\nContent-Type: application/json\r\nContent-Length: 30\r\nConnection: close\r\n\r\n{"resourceType":"Observation"}`]);
    assert.ok(header.status === 201 || header.status === 400, String(header.status));
    assertNotPolluted();
  });

  test('__proto__ and friends in routes.yaml are refused when the config is read', () => {
    for (const yaml of ['version: 1\nroutes: []\n__proto__: { polluted: yes }\n', 'version: 1\nroutes: []\nserver: { constructor: { prototype: { polluted: yes } } }\n', 'version: 1\nroutes:\n  - { id: a, layer: system, match: { path: /a }, target: { upstream: u, path: /a }, policies: [ { validate: { body: { prototype: {} } } } ] }\n']) {
      assert.throws(() => parseConfig(yaml, 'routes.yaml'), (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.message === 'forbidden key'));
    }
    assertNotPolluted();
  });
});
