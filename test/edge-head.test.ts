import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startIdp, type DevIdp } from '../gateway/sandbox/index.ts';
import { rawRequest, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Class 5 of issue 12: HEAD runs the same request and response phase as GET. On a buffered route it is
 * asked upstream as GET, the policies judge the body, and the client gets the GET's headers without the
 * body; another patient's resource answers HEAD exactly as it answers GET (no ETag/Last-Modified oracle).
 */
const OBS: Record<string, { patient: string; version: string }> = {
  'mine-1': { patient: 'p1', version: '3' },
  'theirs-1': { patient: 'p2', version: '7' },
};
const observation = (id: string) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'Heart rate' }, subject: { reference: `Patient/${OBS[id].patient}` }, meta: { versionId: OBS[id].version } });

describe('HEAD runs the GET phases (issue 12, class 5)', () => {
  let idp: DevIdp;
  let ehr: TestUpstream;
  let gw: TestGateway;
  let p1: string;

  before(async () => {
    idp = await startIdp({ port: 0 });
    ehr = await startUpstream((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      const id = /^\/Observation\/([^/]+)$/.exec(path)?.[1];
      res.setHeader('server', 'Kestrel/8.0 (internal-ehr-01)');
      res.setHeader('x-powered-by', 'ASP.NET');
      res.setHeader('content-type', 'application/fhir+json');
      if (id && OBS[id]) {
        // Honours conditional requests, as FHIR servers do: the oracle a gateway must not pass on.
        if (req.headers['if-none-match'] === `W/"${OBS[id].version}"`) {
          res.statusCode = 304;
          res.setHeader('etag', `W/"${OBS[id].version}"`);
          return res.end();
        }
        res.setHeader('etag', `W/"${OBS[id].version}"`);
        res.setHeader('last-modified', 'Tue, 01 Dec 2026 10:00:00 GMT');
        return res.end(JSON.stringify(observation(id)));
      }
      if (path === '/Observation') {
        const entry = Object.keys(OBS).map((k) => ({ resource: observation(k), search: { mode: 'match' } }));
        return res.end(JSON.stringify({ resourceType: 'Bundle', type: 'searchset', total: entry.length, entry }));
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found' }] }));
    });
    const route = (id: string, path: string, target: string, fhir: string, compartment: string) => `
  - id: ${id}
    layer: system
    match: { methods: [GET], path: "${path}" }
    fhir: { ${fhir} }
    target: { upstream: ehr, path: "${target}" }
    policies:
      - jwt: { issuers: [dev] }
      - scopes: { smart: true }${compartment}`;
    gw = await startGateway(`version: 1
identity:
  issuers:
    - { name: dev, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }
upstreams:
  ehr: { url: "${ehr.url}" }
routes:${route('obs-read', '/fhir/Observation/:id', '/Observation/:id', 'resourceType: Observation, interaction: read', '\n      - patient-compartment: { foreignRead: not-found }')}${route(
      'obs-read-403',
      '/strict/Observation/:id',
      '/Observation/:id',
      'resourceType: Observation, interaction: read',
      '\n      - patient-compartment: {}',
    )}${route('obs-search', '/fhir/Observation', '/Observation', 'resourceType: Observation, interaction: search', '\n      - patient-compartment: {}')}${route(
      'obs-streamed',
      '/open/Observation/:id',
      '/Observation/:id',
      'resourceType: Observation, interaction: read',
      '',
    )}
`);
    p1 = await idp.mint({ clientId: 'portal-app', patient: 'p1', scopes: ['patient/*.rs'] });
  });
  after(async () => {
    await gw?.close();
    await Promise.all([idp?.close(), ehr?.close()]);
  });

  const send = (method: string, path: string, headers: Record<string, string> = {}) => rawRequest(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${p1}`, ...headers } });
  const ORACLE = ['etag', 'last-modified', 'content-location', 'location', 'server', 'x-powered-by'];

  for (const [name, path, extra] of [
    ['another patient’s resource (foreignRead: not-found)', '/fhir/Observation/theirs-1', {}],
    ['another patient’s resource (refused 403)', '/strict/Observation/theirs-1', {}],
    ['another patient’s resource with If-None-Match of its real version', '/fhir/Observation/theirs-1', { 'if-none-match': 'W/"7"' }],
    ['another patient’s resource with If-Modified-Since', '/strict/Observation/theirs-1', { 'if-modified-since': 'Tue, 01 Dec 2026 09:00:00 GMT' }],
    ['a search naming another patient', '/fhir/Observation?patient=p2', {}],
    ['a resource that does not exist', '/fhir/Observation/nobody', {}],
  ] as const) {
    test(`HEAD answers as GET does: ${name}`, async () => {
      const get = await send('GET', path, extra);
      const head = await send('HEAD', path, extra);
      assert.equal(head.status, get.status, `${path}: HEAD ${head.status} vs GET ${get.status}`);
      assert.ok(head.status >= 400, `${path} must be refused, got ${head.status}`);
      assert.equal(head.body, '');
      for (const h of ORACLE) assert.equal(head.headers[h], undefined, `HEAD ${path} leaks ${h}`);
      assert.equal(head.headers['content-type'], get.headers['content-type']);
    });
  }

  test('HEAD on a buffered route: asked upstream as GET, response phase run, GET’s headers without the body', async () => {
    const before = ehr.requests.length;
    const get = await send('GET', '/fhir/Observation/mine-1');
    const head = await send('HEAD', '/fhir/Observation/mine-1');
    assert.equal(get.status, 200);
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.deepEqual(ehr.requests.slice(before).map((r) => r.method), ['GET', 'GET'], 'the upstream is asked with GET');
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)), 'Content-Length of the filtered body');
    assert.equal(head.headers.etag, get.headers.etag);
    for (const h of ['server', 'x-powered-by']) assert.equal(head.headers[h], undefined);
  });

  test('HEAD on a filtered search: Content-Length of the filtered Bundle, not of the upstream’s', async () => {
    const get = await send('GET', '/fhir/Observation');
    const head = await send('HEAD', '/fhir/Observation');
    assert.equal(get.status, 200);
    const bundle = get.json() as { entry: Array<{ resource: { id: string } }> };
    assert.deepEqual(bundle.entry.map((e) => e.resource.id), ['mine-1']);
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(get.body)));
    assert.equal(head.body, '');
  });

  test('If-None-Match on a buffered route is not passed upstream: an own resource answers 200, never an upstream 304', async () => {
    const before = ehr.requests.length;
    const res = await send('GET', '/fhir/Observation/mine-1', { 'if-none-match': 'W/"3"', range: 'bytes=0-5' });
    assert.equal(res.status, 200);
    const sent = ehr.requests.slice(before)[0];
    assert.equal(sent.headers['if-none-match'], undefined);
    assert.equal(sent.headers.range, undefined);
  });

  test('streamed route (no response policy): HEAD is forwarded as HEAD — GET would release the same — banners removed', async () => {
    const before = ehr.requests.length;
    const get = await send('GET', '/open/Observation/theirs-1');
    const head = await send('HEAD', '/open/Observation/theirs-1');
    assert.equal(get.status, 200);
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.deepEqual(ehr.requests.slice(before).map((r) => r.method), ['GET', 'HEAD']);
    for (const r of [get, head]) for (const h of ['server', 'x-powered-by']) assert.equal(r.headers[h], undefined);
  });
});
