import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { configIssues, assertIssues, problem, sandboxPreamble, startSandboxGateway, type SandboxGateway } from './helpers.ts';
import { EPHEMERAL_PORTS, startSandbox } from '../gateway/sandbox/index.ts';

const SCHEMAS = fileURLToPath(new URL('../schemas/', import.meta.url));

const ROUTES = `
routes:
  - id: observation-create
    layer: system
    match: { methods: [POST], path: /system/ehr/Observation }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate:
          body: { $ref: "${SCHEMAS}fhir/Observation.json" }
          response: { schema: { $ref: "${SCHEMAS}fhir/Observation.json" }, onFail: reject, statuses: [201] }
  - id: claim-create
    layer: system
    match: { methods: [POST], path: /system/ehr/Claim }
    target: { upstream: ehr, path: /Claim }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate: { body: { $ref: "${SCHEMAS}fhir/Claim.json" } }
  - id: charge-create
    layer: system
    match: { methods: [POST], path: /system/billing/charges }
    target: { upstream: billing, path: /charges }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate: { body: { $ref: "${SCHEMAS}billing/charge.json" } }
  - id: observation-search
    layer: system
    match: { methods: [GET], path: /system/ehr/Observation }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate:
          query:
            type: object
            additionalProperties: false
            required: [patient]
            properties:
              patient: { type: string, pattern: "^[A-Za-z0-9-]{1,64}$" }
              _count: { type: string, pattern: "^[0-9]{1,3}$" }
          headers:
            type: object
            required: [X-Purpose-Of-Use]
            properties:
              X-Purpose-Of-Use: { enum: [TREAT, HPAYMT] }
  - id: patient-read
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    target: { upstream: ehr, path: /Patient/:id }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - validate:
          params: { type: object, properties: { id: { type: string, pattern: "^p[0-9]{1,6}$" } } }
          response:
            onFail: log
            schema: { type: object, required: [resourceType, birthDate], properties: { resourceType: { const: Patient } } }
  - id: patient-read-strict
    layer: system
    match: { methods: [GET], path: /system/ehr/strict/Patient/:id }
    target: { upstream: ehr, path: /Patient/:id }
    policies:
      - validate:
          response:
            onFail: reject
            schema: { type: object, required: [photo] }
  - id: patient-read-logged
    layer: system
    match: { methods: [GET], path: /system/ehr/logged/Patient/:id }
    target: { upstream: ehr, path: /Patient/:id }
    policies:
      - validate:
          response:
            schema: { type: object, required: [photo] }
`;

const OBSERVATION = {
  resourceType: 'Observation',
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
  subject: { reference: 'Patient/p1' },
  effectiveDateTime: '2024-05-02T10:00:00Z',
  valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
};

type Violation = { in: string; pointer: string; message: string };

describe('validate policy', () => {
  let t: SandboxGateway;
  let token: string;
  before(async () => {
    t = await startSandboxGateway(() => ROUTES);
    token = await t.token({ clientId: 'clinician-app' });
  });
  after(async () => {
    await t.close();
  });

  const post = (path: string, body: unknown, contentType = 'application/fhir+json') =>
    t.call(path, token, { method: 'POST', headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const violations = async (res: Response): Promise<Violation[]> => {
    assert.equal(res.status, 400);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/validation-failed');
    return p.errors as Violation[];
  };

  test('an invalid Observation is refused with every violation by JSON pointer, values never echoed, EHR not called', async () => {
    const before = t.sb.upstreams.ehr.stats().total;
    const bad = {
      ...OBSERVATION,
      status: 'done-SECRETVALUE',
      code: {},
      effectiveDateTime: 'yesterday-SECRETVALUE',
      valueQuantity: { value: 'seventy-SECRETVALUE' },
      valueString: 'also a value',
      subject: { reference: 'Patient/p1', nickname: 'x' },
      shoeSize: 44,
    };
    const res = await post('/system/ehr/Observation', bad);
    const text = JSON.stringify(await violations(res.clone()));
    const errors = JSON.parse(text) as Violation[];
    const at = (pointer: string) => errors.filter((e) => e.pointer === pointer);
    assert.ok(at('/status').length, 'status enum');
    assert.ok(at('/code').length, 'empty code');
    assert.ok(at('/effectiveDateTime').length, 'dateTime pattern');
    assert.ok(at('/valueQuantity/value').some((e) => e.message === 'must be number'));
    assert.deepEqual(at('/shoeSize'), [{ in: 'body', pointer: '/shoeSize', message: 'is not allowed' }]);
    assert.deepEqual(at('/subject/nickname').map((e) => e.message), ['is not allowed']);
    assert.ok(at('').some((e) => /NOT be valid/.test(e.message)), 'two value[x] forms');
    assert.ok(errors.every((e) => e.in === 'body'));
    assert.doesNotMatch(await res.text(), /SECRETVALUE|seventy|yesterday/);
    assert.equal(t.sb.upstreams.ehr.stats().total, before, 'the upstream never saw the invalid body');
  });

  test('a valid Observation passes unchanged, is created by the EHR, and the created resource passes the same schema', async () => {
    const res = await post('/system/ehr/Observation', OBSERVATION);
    assert.equal(res.status, 201);
    const created = (await res.json()) as Record<string, unknown>;
    assert.equal(created.resourceType, 'Observation');
    assert.match(String(created.id), /^observation-\d+$/);
    assert.deepEqual(created.valueQuantity, OBSERVATION.valueQuantity);
  });

  test('wrong resourceType, missing required elements, missing body and non-JSON bodies', async () => {
    const wrongType = await violations(await post('/system/ehr/Observation', { ...OBSERVATION, resourceType: 'Patient' }));
    assert.deepEqual(wrongType.map((e) => e.pointer), ['/resourceType']);
    const missing = await violations(await post('/system/ehr/Observation', { resourceType: 'Observation' }));
    assert.deepEqual(missing.map((e) => e.pointer).sort(), ['/code', '/status']);
    assert.ok(missing.every((e) => e.message === 'is required'));
    const none = await violations(await t.call('/system/ehr/Observation', token, { method: 'POST' }));
    assert.deepEqual(none, [{ in: 'body', pointer: '', message: 'a JSON body is required' }]);
    const text = await post('/system/ehr/Observation', 'resourceType=Observation', 'text/plain');
    assert.equal(text.status, 415);
    assert.equal((await problem(text)).type, 'https://hcgw.dev/problems/unsupported-media-type');
  });

  test('a Claim create is checked against the compact FHIR Claim schema', async () => {
    const errors = await violations(await post('/system/ehr/Claim', { resourceType: 'Claim', status: 'active', use: 'bill', insurance: [] }));
    const pointers = errors.map((e) => e.pointer);
    for (const p of ['/type', '/patient', '/created', '/provider', '/priority', '/use', '/insurance']) assert.ok(pointers.includes(p), `${p} in ${pointers}`);
    const claim = {
      resourceType: 'Claim', status: 'active', use: 'claim', created: '2024-05-02',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
      patient: { reference: 'Patient/p1' }, provider: { reference: 'Organization/org-gp' },
      priority: { coding: [{ code: 'normal' }] },
      insurance: [{ sequence: 1, focal: true, coverage: { reference: 'Coverage/cov-1' } }],
      diagnosis: [{ sequence: 1, diagnosisCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'I10' }] } }],
      item: [{ sequence: 1, productOrService: { coding: [{ code: '99213' }] }, net: { value: 120, currency: 'USD' } }],
    };
    // The sandbox EHR stores no Claims: reaching its own 404 proves the gateway let the body through.
    const passed = await post('/system/ehr/Claim', claim);
    assert.equal(passed.status, 404);
    assert.equal(((await passed.json()) as { resourceType: string }).resourceType, 'OperationOutcome');
  });

  test('billing charge create: non-FHIR JSON against its own schema', async () => {
    const errors = await violations(await post('/system/billing/charges', { encounter: 'e-p1-1', code: 'abc', amount: -5, note: 'x' }, 'application/json'));
    assert.deepEqual(errors.map((e) => e.pointer).sort(), ['/amount', '/code', '/encounter', '/note']);
    const ok = await post('/system/billing/charges', { encounter: 'Encounter/e-p1-1', code: '36415', amount: 12.5 }, 'application/json');
    assert.equal(ok.status, 201);
    assert.equal(((await ok.json()) as { patient: string }).patient, 'Patient/p1');
  });

  test('query parameters, chosen headers and path parameters are validated together', async () => {
    const both = await violations(await t.call('/system/ehr/Observation?_count=lots&extra=1', token, { headers: { 'x-purpose-of-use': 'MARKETING' } }));
    assert.deepEqual(
      both.map((e) => `${e.in} ${e.pointer}`).sort(),
      ['header /X-Purpose-Of-Use', 'query /_count', 'query /extra', 'query /patient'],
    );
    const ok = await t.call('/system/ehr/Observation?patient=p3', token, { headers: { 'x-purpose-of-use': 'TREAT' } });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { total: number }).total, 3);
    const repeated = await violations(await t.call('/system/ehr/Observation?patient=p1&patient=p2', token, { headers: { 'x-purpose-of-use': 'TREAT' } }));
    assert.deepEqual(repeated.map((e) => `${e.in} ${e.pointer} ${e.message}`), ['query /patient must be string']);
    const badParam = await violations(await t.call('/system/ehr/Patient/x1', token));
    assert.deepEqual(badParam.map((e) => `${e.in} ${e.pointer}`), ['path /id']);
  });

  test('response validation: a passing body is sent as is; onFail log counts and warns; onFail reject answers 502', async () => {
    const okRes = await t.call('/system/ehr/Patient/p1', token);
    assert.equal(okRes.status, 200);
    assert.equal(((await okRes.json()) as { id: string }).id, 'p1');

    const logged = await fetch(`${t.gw.url}/system/ehr/logged/Patient/p1`);
    assert.equal(logged.status, 200, 'log mode still answers');
    await logged.arrayBuffer();
    const metrics = await (await fetch(`${t.gw.url}/metrics`)).text();
    assert.match(metrics, /hcgw_response_validation_failures_total\{route="patient-read-logged"\} 1/);
    const warning = t.gw.lines.find((l) => l.includes('upstream response failed validation'));
    assert.ok(warning, 'a warning was logged');
    assert.match(warning, /"pointer":"\/photo"/);
    assert.doesNotMatch(warning, /Zyx/, 'the log names fields, not patient data');

    const rejected = await fetch(`${t.gw.url}/system/ehr/strict/Patient/p1`);
    assert.equal(rejected.status, 502);
    const p = await problem(rejected);
    assert.equal(p.type, 'https://hcgw.dev/problems/bad-gateway');
    assert.doesNotMatch(JSON.stringify(p), /Zyx|MRN/);
  });
});

describe('validate policy: configuration errors stop the load', () => {
  test('remote $ref, unreadable schema file, schema that does not compile, unknown option', async () => {
    const sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    try {
      const route = (id: string, policy: string) => `
  - id: ${id}
    layer: system
    match: { methods: [POST], path: /${id} }
    target: { upstream: ehr, path: /Observation }
    policies:
      - validate: ${policy}`;
      const yaml =
        sandboxPreamble(sb) +
        'routes:' +
        route('remote', '{ body: { $ref: "https://example.org/fhir.schema.json" } }') +
        route('missing', '{ body: { $ref: "./no-such-schema.json" } }') +
        route('broken', '{ body: { type: objekt } }') +
        route('unknown', '{ bodySchema: {} }');
      assertIssues(await configIssues(yaml), [
        /^routes\[0\]\.policies\[0\]\.validate\.body: .*never remote/,
        /^routes\[1\]\.policies\[0\]\.validate\.body: .*cannot be read.*ENOENT/,
        /^routes\[2\]\.policies\[0\]\.validate\.body: schema does not compile/,
        /^routes\[3\]\.policies\[0\]\.validate\.bodySchema: unknown key/,
      ]);
    } finally {
      await sb.close();
    }
  });
});
