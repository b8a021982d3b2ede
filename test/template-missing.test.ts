import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertIssues, configIssues, createTestIssuer, problem, startGateway, startUpstream, type TestGateway, type TestIssuer, type TestUpstream } from './helpers.ts';

/**
 * Issue 12, class 3: a template value a path or query needs but the request, token or an earlier step lacks
 * fails the request; it never renders to nothing and silently drops a filter (the upstream would then answer
 * for every patient). Only a template that declares a fallback (`?? "v"`, or `?? null` to leave it out) passes.
 */
describe('missing template values fail closed', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let idp: TestIssuer;
  const step = (name: string, query: string, path = '/Encounter') => `        - { name: ${name}, upstream: ehr, path: "${path}", query: ${query} }`;
  const route = (id: string, layer: string, steps: string[], merge = 'out: steps.a.body') => `
  - id: ${id}
    layer: ${layer}
    match: { methods: [GET], path: /${id} }
    target:
      compose:
${steps.join('\n')}
      merge: { ${merge} }
    policies:
      - jwt: { issuers: [${idp.name}] }`;

  before(async () => {
    up = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json');
      // The "EHR" answers a search without a patient filter with everyone's data: what the bug leaked.
      res.end(JSON.stringify(req.url?.startsWith('/Empty') ? { resourceType: 'Bundle', entry: [] } : { resourceType: 'Bundle', url: req.url, id: 'enc-1', ref: '' }));
    });
    idp = await createTestIssuer('tmpl-idp');
    gw = await startGateway(`
version: 1
identity: { issuers: [${idp.yaml}] }
upstreams: { ehr: { url: "${up.url}" } }
routes:
${route('by-patient', 'process', [step('a', '{ patient: "{{ principal.patient }}" }')])}
${route('by-patient-path', 'process', [step('a', '{}', '/Patient/{{ principal.patient }}/Encounter')])}
${route('by-query', 'process', [step('a', '{ status: "{{ query.status }}" }')])}
${route('with-default', 'process', [step('a', '{ status: "{{ query.status ?? \\"finished\\" }}" }')])}
${route('optional', 'process', [step('a', '{ status: "{{ query.status ?? null }}", patient: "{{ principal.patient }}" }')])}
${route('from-step', 'process', [step('a', '{}'), step('b', '{ encounter: "{{ steps.a.body.missing }}" }')], 'out: steps.b.body')}
${route('from-empty-step-field', 'process', [step('a', '{}'), step('b', '{ encounter: "{{ steps.a.body.ref }}" }')], 'out: steps.b.body')}
${route('portal-experience', 'experience', [step('a', '{ patient: "{{ principal.patient }}" }')])}
    project: { data: out }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const call = async (path: string, claims: Record<string, unknown> = {}) => {
    const before = up.requests.length;
    const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${await idp.mint({ clientId: 'c1', extra: claims })}` } });
    return { res, sent: up.requests.slice(before).map((r) => r.url) };
  };

  it('a token without a patient context: 403 on a query filter, nothing sent upstream', async () => {
    const { res, sent } = await call('/by-patient');
    assert.equal(res.status, 403);
    const p = await problem(res);
    assert.equal(p.type, 'https://hcgw.dev/problems/forbidden');
    assert.deepEqual(sent, [], 'the unfiltered search never reached the upstream');
  });

  it('the same for an empty patient claim, for a path value, and on an experience route', async () => {
    for (const [path, claims] of [
      ['/by-patient', { patient: '' }],
      ['/by-patient-path', {}],
      ['/by-patient-path', { patient: '' }],
      ['/portal-experience', {}],
    ] as const) {
      const { res, sent } = await call(path, claims);
      assert.equal(res.status, 403, `${path} ${JSON.stringify(claims)}`);
      assert.deepEqual(sent, [], path);
    }
  });

  it('with the patient context present the filter is sent', async () => {
    const { res, sent } = await call('/by-patient', { patient: 'p1' });
    assert.equal(res.status, 200);
    assert.deepEqual(sent, ['/Encounter?patient=p1']);
    const viaPath = await call('/by-patient-path', { patient: 'p1' });
    assert.deepEqual(viaPath.sent, ['/Patient/p1/Encounter']);
  });

  it('a missing request value is a 400; an empty one too', async () => {
    for (const q of ['', '?status=', '?other=1']) {
      const { res, sent } = await call(`/by-query${q}`);
      assert.equal(res.status, 400, q);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/bad-request');
      assert.deepEqual(sent, [], q);
    }
    assert.deepEqual((await call('/by-query?status=final')).sent, ['/Encounter?status=final']);
  });

  it('a declared fallback is used, and `?? null` leaves only that parameter out', async () => {
    assert.deepEqual((await call('/with-default')).sent, ['/Encounter?status=finished']);
    assert.deepEqual((await call('/with-default?status=planned')).sent, ['/Encounter?status=planned']);
    assert.deepEqual((await call('/optional', { patient: 'p1' })).sent, ['/Encounter?patient=p1']);
    const { res, sent } = await call('/optional');
    assert.equal(res.status, 403, 'an optional value does not make the other ones optional');
    assert.deepEqual(sent, []);
  });

  it('a value an earlier step lacks (absent or empty) fails with 502, the dependent call never made', async () => {
    for (const path of ['/from-step', '/from-empty-step-field']) {
      const { res, sent } = await call(path);
      assert.equal(res.status, 502, path);
      assert.deepEqual(sent, ['/Encounter'], `${path}: only the first step ran`);
    }
  });

  it('a malformed fallback is a config error with its path', async () => {
    const issues = await configIssues(`
version: 1
upstreams: { ehr: { url: "http://127.0.0.1:9" } }
routes:
  - id: bad
    layer: process
    match: { methods: [GET], path: /bad }
    target:
      compose:
        - { name: a, upstream: ehr, path: /x, query: { q: "{{ query.q ?? [1] }}", r: "{{ query.r ?? nope }}" } }
`);
    assertIssues(issues, [/routes\[0\]\.target.*query\.q.*fallback after \?\? must be/, /query\.r.*fallback after \?\? must be/]);
  });
});
