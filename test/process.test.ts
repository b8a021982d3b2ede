import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EPHEMERAL_PORTS, startSandbox, type Sandbox } from '../gateway/sandbox/index.ts';
import { compileString, compileUrlPath, compileValue, compileMapping, TemplateError, type TemplateScope } from '../gateway/targets/template.ts';
import { configIssues, assertIssues, problem, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/** Process routes over the sandbox: the encounter financial summary and the supply-usage POST. */
function sandboxYaml(sb: Sandbox, extraUpstreams = '', extraRoutes = ''): string {
  return `
version: 1
identity:
  issuers:
    - { name: sandbox-idp, issuer: "${sb.idp.issuer}", jwksUri: "${sb.idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }
upstreams:
  ehr: { url: "${sb.urls.ehr}", timeoutMs: 2000 }
  billing: { url: "${sb.urls.billing}", timeoutMs: 2000 }
  erp: { url: "${sb.urls.erp}", timeoutMs: 2000 }
${extraUpstreams}
routes:
  - id: encounter-financial-summary
    layer: process
    match: { methods: [GET], path: /process/encounters/:id/financial-summary }
    target:
      compose:
        - { name: encounter, upstream: ehr, path: "/Encounter/{{params.id}}" }
        - { name: claims, upstream: billing, path: /claims, query: { encounter: "{{steps.encounter.body.id}}" } }
        - name: costCenter
          upstream: erp
          path: /cost-centers
          query: { encounter: "{{steps.encounter.body.id}}" }
          required: false
          timeoutMs: 300
      merge:
        encounter: { id: steps.encounter.body.id, serviceProvider: steps.encounter.body.serviceProvider.reference }
        claims: steps.claims.body.data
        costCenter: steps.costCenter.body.data[0]
    policies:
      - jwt: { issuers: [sandbox-idp] }
  - id: supply-usage
    layer: process
    match: { methods: [POST], path: /process/encounters/:id/supply-usage }
    target:
      status: 201
      compose:
        - name: inventory
          upstream: erp
          method: POST
          path: "/inventory/{{body.itemId}}/decrement"
          body: { quantity: "{{body.quantity}}" }
        - name: charge
          upstream: billing
          method: POST
          path: /charges
          after: [inventory]
          body:
            encounter: "Encounter/{{params.id}}"
            code: "{{body.code}}"
            amount: "{{body.amount}}"
            description: "Supplies {{body.itemId}} x{{body.quantity}}, recorded by {{principal.clientId}}"
        - name: posting
          upstream: erp
          method: POST
          path: /postings
          required: false
          body: { encounter: "{{params.id}}", amount: "{{body.amount}}", itemId: "{{body.itemId}}", reference: "{{steps.charge.body.id}}" }
      merge:
        stock: steps.inventory.body
        charge: steps.charge.body
        posting: steps.posting.body
    policies:
      - jwt: { issuers: [sandbox-idp] }
${extraRoutes}`;
}

describe('process APIs: composition over the sandbox', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  let barrier: TestUpstream;
  let token: string;
  /** Requests of the barrier upstream are held until both /a and /b arrived: only a parallel fan-out passes. */
  const waiting = new Map<string, () => void>();
  before(async () => {
    sb = await startSandbox({ ports: EPHEMERAL_PORTS });
    barrier = await startUpstream((req, res) => {
      const name = (req.url ?? '').slice(1, 2);
      const answer = () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ name, requestId: req.headers['x-request-id'], traceparent: req.headers.traceparent }));
      };
      const other = waiting.get(name === 'a' ? 'b' : 'a');
      if (other) {
        waiting.delete(name === 'a' ? 'b' : 'a');
        other();
        answer();
        return;
      }
      const timer = setTimeout(() => {
        waiting.delete(name);
        res.statusCode = 500;
        res.end('{"error":"the sibling step never came"}');
      }, 3000);
      waiting.set(name, () => {
        clearTimeout(timer);
        answer();
      });
    });
    gw = await startGateway(
      sandboxYaml(
        sb,
        `  barrier: { url: "${barrier.url}", timeoutMs: 5000 }`,
        `
  - id: fan-out
    layer: process
    match: { methods: [GET], path: /process/fan-out/:id }
    target:
      compose:
        - { name: encounter, upstream: ehr, path: "/Encounter/{{params.id}}" }
        - { name: a, upstream: barrier, path: "/a/{{steps.encounter.body.subject.reference | id}}" }
        - { name: b, upstream: barrier, path: /b, dependsOn: [encounter] }
      merge: { patient: "{{steps.encounter.body.subject.reference | id}}", a: steps.a.body, b: steps.b.body }`,
      ),
    );
    token = await sb.idp.mint({ clientId: 'erp-batch', scopes: ['erp.write', 'billing.write'] });
  });
  after(async () => {
    await gw?.close();
    await barrier?.close();
    await sb?.close();
  });
  beforeEach(() => sb.reset());

  const auth = () => ({ authorization: `Bearer ${token}` });
  const summary = (id: string) => fetch(`${gw.url}/process/encounters/${id}/financial-summary`, { headers: auth() });
  const supply = (id: string, body: unknown) =>
    fetch(`${gw.url}/process/encounters/${id}/supply-usage`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test('3 steps: read the Encounter, then its Claims and cost center, merged into one summary', async () => {
    const res = await summary('e-p1-1');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as { encounter: { id: string; serviceProvider: string }; claims: Array<{ id: string; encounter: string }>; costCenter: { id: string }; warnings?: unknown };
    assert.deepEqual(body.encounter, { id: 'e-p1-1', serviceProvider: 'Organization/org-cardio' });
    assert.deepEqual(
      body.claims.map((c) => c.id),
      ['clm-p1-1'],
      'the claims step used the encounter id read by the first step',
    );
    assert.equal(body.costCenter.id, 'cc-cardio');
    assert.equal(body.warnings, undefined);
    assert.equal(sb.upstreams.ehr.stats().requests['GET /fhir/Encounter/e-p1-1'], 1);
    assert.equal(sb.upstreams.billing.stats().requests['GET /claims'], 1);
    assert.equal(sb.upstreams.erp.stats().requests['GET /cost-centers'], 1);
  });

  test('steps whose dependencies are done run in parallel; each carries the request id and traceparent', async () => {
    const trace = '0af7651916cd43dd8448eb211c80319c';
    const res = await fetch(`${gw.url}/process/fan-out/e-p2-1`, { headers: { 'x-request-id': 'fan-1', traceparent: `00-${trace}-b7ad6b7169203331-01` } });
    assert.equal(res.status, 200, 'a sequential run would leave the barrier waiting and fail');
    const body = (await res.json()) as { patient: string; a: { name: string; requestId: string; traceparent: string }; b: { name: string; requestId: string } };
    assert.equal(body.patient, 'p2');
    assert.equal(body.a.name, 'a');
    assert.equal(body.b.name, 'b');
    assert.equal(body.a.requestId, 'fan-1');
    assert.equal(body.b.requestId, 'fan-1');
    assert.match(body.a.traceparent, new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    assert.equal(barrier.requests.find((r) => r.url.startsWith('/a/'))?.url, '/a/p2', 'the `id` filter turned Patient/p2 into a path segment');
  });

  test('a required step failing → 502 problem naming the step, without upstream details', async () => {
    sb.upstreams.billing.setFault({ status: 500, path: '/claims' });
    const res = await summary('e-p1-1');
    assert.equal(res.status, 502);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/bad-gateway');
    assert.equal(p.step, 'claims');
    assert.doesNotMatch(JSON.stringify(p), /Injected|server_error|e-p1-1/);
  });

  test('the starting resource missing upstream → 404 naming the step; later steps never run', async () => {
    const res = await summary('e-nope-9');
    assert.equal(res.status, 404);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/not-found');
    assert.equal(p.step, 'encounter');
    assert.equal(sb.upstreams.billing.stats().total, 0);
    assert.equal(sb.upstreams.erp.stats().total, 0);
  });

  test('an optional step failing → partial result with a warning naming it', async () => {
    sb.upstreams.erp.setFault({ status: 503, path: '/cost-centers' });
    const res = await summary('e-p1-1');
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal((body.encounter as { id: string }).id, 'e-p1-1');
    assert.equal((body.claims as unknown[]).length, 1);
    assert.equal('costCenter' in body, false);
    assert.deepEqual(body.warnings, [{ step: 'costCenter', reason: 'status-503' }]);
  });

  test('an optional step past its own timeout is left out as `timeout`, the others still answer', async () => {
    sb.upstreams.erp.setFault({ delayMs: 2000, path: '/cost-centers' });
    const t0 = performance.now();
    const res = await summary('e-p1-1');
    const elapsed = performance.now() - t0;
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(body.warnings, [{ step: 'costCenter', reason: 'timeout' }]);
    assert.ok(elapsed < 1900, `answered before the slow step would have (${Math.round(elapsed)}ms)`);
  });

  test('POST composition: templates from the body, the principal and an earlier result', async () => {
    const res = await supply('e-p1-2', { itemId: 'itm-100', quantity: 3, code: 'SUP-SAL', amount: 5.55 });
    assert.equal(res.status, 201);
    const body = (await res.json()) as { stock: { itemId: string; onHand: number }; charge: { id: string; encounter: string; amount: number; description: string }; posting: { reference: string; costCenter: string } };
    assert.deepEqual(body.stock, { itemId: 'itm-100', location: 'WH-SYN-1', onHand: 237 });
    assert.equal(body.charge.encounter, 'Encounter/e-p1-2');
    assert.equal(body.charge.amount, 5.55, 'a lone {{ }} keeps the number a number');
    assert.equal(body.charge.description, 'Supplies itm-100 x3, recorded by erp-batch');
    assert.equal(body.posting.reference, body.charge.id, 'the posting step read the charge step result');
    assert.equal(body.posting.costCenter, 'cc-lab');
  });

  test('a refused required step keeps its meaning (409) and the dependent charge is never sent', async () => {
    const res = await supply('e-p1-1', { itemId: 'itm-104', quantity: 5, code: 'SUP-ECG', amount: 46.25 });
    assert.equal(res.status, 409);
    const p = await problem(res);
    assert.equal(p.step, 'inventory');
    assert.equal(sb.upstreams.billing.stats().requests['POST /charges'], undefined);
  });

  test('input a step needs is missing → 400 naming the step, nothing sent upstream', async () => {
    const res = await supply('e-p1-1', { quantity: 1, code: 'X', amount: 1 });
    assert.equal(res.status, 400);
    assert.equal((await problem(res)).step, 'inventory');
    assert.equal(sb.upstreams.erp.stats().total, 0);
  });

  test('a non-JSON body for a process that reads the body → 415', async () => {
    const res = await fetch(`${gw.url}/process/encounters/e-p1-1/supply-usage`, { method: 'POST', headers: { ...auth(), 'content-type': 'text/plain' }, body: 'itemId=itm-100' });
    assert.equal(res.status, 415);
    await problem(res);
  });
});

describe('process APIs: config checks at load', () => {
  test('unknown upstream and step, cycles, bad templates, GET bodies: every error with its path', async () => {
    const yaml = `
version: 1
upstreams:
  a: { url: "http://127.0.0.1:9" }
routes:
  - id: broken
    layer: process
    match: { methods: [GET], path: /p/:id }
    target:
      compose:
        - { name: one, upstream: nowhere, path: /x }
        - { name: two, upstream: a, path: "/y/{{steps.three.body.id}}", dependsOn: [ghost] }
        - { name: three, upstream: a, path: /z, after: [two] }
        - { name: four, upstream: a, path: "/{{request.url}}", body: { x: 1 } }
        - { name: five, upstream: a, path: "/{{params.nope}}", query: { q: "{{ body.x | upper }}" } }
        - { name: one, upstream: a, path: "/{{ params.id" }
      merge: { x: steps.six.body, y: "not a path" }
  - id: schema
    layer: process
    match: { methods: [GET], path: /q }
    target: { compose: [ { name: "bad name", upstream: a, path: x, retries: 2 } ] }
`;
    assertIssues(await configIssues(yaml), [
      /^routes\[0\]\.target\.compose\[0\]\.upstream: unknown upstream "nowhere"/,
      /^routes\[0\]\.target\.compose\[1\]\.dependsOn\[0\]: unknown step "ghost"/,
      /^routes\[0\]\.target\.compose\[\d\]\.dependsOn: dependency cycle: (two → three → two|three → two → three)/,
      /^routes\[0\]\.target\.compose\[3\]\.path: .*must start with one of: params, query, body, principal, steps/,
      /^routes\[0\]\.target\.compose\[3\]\.body: a GET step sends no body/,
      /^routes\[0\]\.target\.compose\[4\]\.path: uses parameter\(s\) not in match\.path: nope/,
      /^routes\[0\]\.target\.compose\[4\]\.query\.q: .*unknown filter "upper"/,
      /^routes\[0\]\.target\.compose\[5\]\.name: duplicate step name "one"/,
      /^routes\[0\]\.target\.compose\[5\]\.path: .*unbalanced/,
      /^routes\[0\]\.target\.merge: reads unknown step "six"/,
      /^routes\[0\]\.target\.merge\.y: "not a path" is not a field path/,
      /^routes\[1\]\.target\.compose\[0\]\.name: must match pattern/,
      /^routes\[1\]\.target\.compose\[0\]\.path: must match pattern/,
      /^routes\[1\]\.target\.compose\[0\]\.retries: unknown key/,
    ]);
  });
});

describe('process APIs: the template language', () => {
  const scope = (over: Partial<TemplateScope> = {}): TemplateScope => ({
    params: { id: 'a b/../c' },
    query: { n: '7' },
    body: { items: [{ sku: 'x', qty: 2 }], qty: 3, flag: false },
    principal: { subject: 'u1', clientId: 'app' },
    steps: { enc: { status: 200, headers: {}, body: { subject: { reference: 'Patient/p9' }, list: [{ id: 'i1' }, { id: 'i2' }] } } },
    ...over,
  });

  test('path values are percent-encoded so they stay one segment; literal text is kept', () => {
    assert.equal(compileUrlPath('/Encounter/{{params.id}}/_history')(scope()), '/Encounter/a%20b%2F..%2Fc/_history');
    assert.equal(compileUrlPath('/{{params.id}}')(scope()), '/a%20b%2F..%2Fc');
    assert.equal(compileUrlPath('/p/{{steps.enc.body.subject.reference | id}}')(scope()), '/p/p9');
    assert.equal(compileUrlPath('/{{params.missing}}')(scope()), undefined, 'a missing value leaves the path unresolved');
    assert.equal(compileUrlPath('/x/{{body.items}}')(scope()), undefined, 'objects never become path text');
  });

  test('a lone expression keeps its type; mixed text needs scalars; [n] and [] walk arrays', () => {
    assert.deepEqual(compileString('{{body.items}}')(scope()), [{ sku: 'x', qty: 2 }]);
    assert.equal(compileString('{{ body.qty }}')(scope()), 3);
    assert.equal(compileString('{{body.flag}}')(scope()), false);
    assert.equal(compileString('n={{query.n}} by {{principal.clientId}}')(scope()), 'n=7 by app');
    assert.equal(compileString('{{steps.enc.body.list[1].id}}')(scope()), 'i2');
    assert.deepEqual(compileString('{{steps.enc.body.list[].id}}')(scope()), ['i1', 'i2']);
    assert.deepEqual(compileValue({ a: ['{{body.qty}}', 'lit'], b: '{{body.none}}', c: null })(scope()), { a: [3, 'lit'], c: null });
    assert.deepEqual(compileMapping({ who: 'principal.subject', n: 1, ids: 'steps.enc.body.list[].id' })(scope()), { who: 'u1', n: 1, ids: ['i1', 'i2'] });
  });

  test('templates cannot reach prototypes or evaluate anything', () => {
    for (const bad of ['{{body.__proto__}}', '{{steps.enc.constructor}}', '{{ process.env.HOME }}', '{{body.x; require("fs")}}', '{{principal.claims}}', '{{steps}}']) {
      assert.throws(() => compileString(bad), TemplateError, bad);
    }
    // Inherited names are never resolved, even when syntactically fine.
    assert.equal(compileString('{{body.toString}}')(scope()), undefined);
    assert.deepEqual(compileString('{{body.items.length}}')(scope()), [], 'arrays are walked, never asked for their own properties');
  });

  test('what a template reads is known at load (dependency inference)', () => {
    const t = compileValue({ a: '{{steps.enc.body.id}}', b: 'x {{params.id}} {{steps.other.status}}' });
    assert.deepEqual([...t.reads].sort(), ['params.id', 'steps.enc', 'steps.other']);
  });
});
