import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { rawHttp, rawRequest, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Class 9 of issue 12 (the edge's parts): experience sources honour forwardAuthorization; malformed JSON is
 * refused on every route, not only where a policy reads the body; /healthz and /readyz apply the routes'
 * Host checks. And the architecture rule behind it all: only the pipeline runs the response phase.
 */

describe('smaller holes at the edge (issue 12, class 9)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let strict: TestGateway;

  before(async () => {
    up = await startUpstream();
    const routes = `upstreams:
  fwd: { url: "${up.url}", forwardAuthorization: true }
  nofwd: { url: "${up.url}" }
routes:
  - { id: view-fwd, layer: experience, match: { methods: [GET, POST], path: /e/fwd }, target: { upstream: fwd, path: /view }, project: { method: method } }
  - { id: view-nofwd, layer: experience, match: { methods: [GET], path: /e/nofwd }, target: { upstream: nofwd, path: /view }, project: { method: method } }
  - id: view-composed
    layer: experience
    match: { methods: [GET], path: /e/composed }
    target: { compose: [{ name: a, upstream: fwd, path: /a }, { name: b, upstream: nofwd, path: /b }] }
    project: { a: a.method }
  - { id: plain-post, layer: system, match: { methods: [POST, PUT, PATCH], path: /plain }, target: { upstream: nofwd, path: /plain } }
`;
    gw = await startGateway(`version: 1\n${routes}`);
    strict = await startGateway(`version: 1\nserver: { allowedHosts: [api.hospital.example, "API.hospital.example:8443"] }\n${routes}`);
  });
  after(async () => {
    await Promise.all([gw?.close(), strict?.close()]);
    await up?.close();
  });

  test('experience source on an upstream with forwardAuthorization receives the caller’s Authorization', async () => {
    const before = up.requests.length;
    const res = await fetch(`${gw.url}/e/fwd`, { headers: { authorization: 'Bearer caller-token' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(up.requests[before].headers.authorization, 'Bearer caller-token');
  });

  test('experience source without forwardAuthorization never receives it; a composition forwards per upstream', async () => {
    let before = up.requests.length;
    const res = await fetch(`${gw.url}/e/nofwd`, { headers: { authorization: 'Bearer caller-token' } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(up.requests[before].headers.authorization, undefined);
    before = up.requests.length;
    const composed = await fetch(`${gw.url}/e/composed`, { headers: { authorization: 'Bearer caller-token' } });
    assert.equal(composed.status, 200);
    await composed.arrayBuffer();
    const byPath = Object.fromEntries(up.requests.slice(before).map((r) => [r.url, r.headers.authorization]));
    assert.deepEqual(byPath, { '/a': 'Bearer caller-token', '/b': undefined });
  });

  for (const [name, body, type] of [
    ['truncated', '{"a":', 'application/json'],
    ['trailing data', '{"a":1} x', 'application/json'],
    ['NaN', '{"a":NaN}', 'application/json'],
    ['single quotes', "{'a':1}", 'application/fhir+json'],
    ['BOM', '\ufeff{"a":1}', 'application/json; charset=utf-8'],
    ['markup', '<a>{"x":1}</a>', 'application/merge-patch+json'],
  ] as const) {
    test(`malformed JSON on a route without any policy → 400, upstream not called: ${name}`, async () => {
      for (const method of ['POST', 'PUT', 'PATCH']) {
        const before = up.requests.length;
        const res = await rawRequest(`${gw.url}/plain`, { method, headers: { 'content-type': type }, body });
        assert.equal(res.status, 400, `${method} ${name}`);
        assert.equal(res.json().type, 'https://hcgw.dev/problems/bad-request');
        assert.ok(!res.body.includes('NaN') && !res.body.includes('<a>'), 'nothing of the body is echoed');
        assert.equal(up.requests.length, before, `${method} ${name}: the upstream was called`);
      }
    });
  }

  test('malformed JSON on an experience route that writes → 400 before the source is asked', async () => {
    const before = up.requests.length;
    const res = await rawRequest(`${gw.url}/e/fwd`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":' });
    assert.equal(res.status, 400);
    assert.equal(up.requests.length, before);
  });

  test('well-formed JSON and non-JSON bodies still pass a route without policies', async () => {
    for (const [type, body] of [['application/json', '{"a":[1,2]}'], ['text/plain', '{"a":'], ['application/octet-stream', 'not json']]) {
      const res = await rawRequest(`${gw.url}/plain`, { method: 'POST', headers: { 'content-type': type }, body });
      assert.equal(res.status, 200, `${type}`);
    }
  });

  for (const path of ['/healthz', '/readyz']) {
    test(`${path} applies the routes' Host checks: not allowed, duplicate, missing`, async () => {
      const ok = await rawRequest(`${strict.url}${path}`, { headers: { host: 'api.hospital.example' } });
      assert.equal(ok.status, 200);
      const okCase = await rawRequest(`${strict.url}${path}`, { headers: { host: 'api.HOSPITAL.example:8443' } });
      assert.equal(okCase.status, 200, 'host names are case-insensitive');
      for (const host of ['evil.example', 'api.hospital.example.evil.example', 'api.hospital.example:9999', '127.0.0.1']) {
        const res = await rawRequest(`${strict.url}${path}`, { headers: { host } });
        assert.equal(res.status, 400, `${path} Host: ${host}`);
        assert.match(String(res.headers['content-type']), /problem\+json/);
        assert.ok(!res.body.includes('evil'), 'the Host is not echoed');
      }
      // The same refusal on a route, for comparison.
      const route = await rawRequest(`${strict.url}/e/nofwd`, { headers: { host: 'evil.example' } });
      assert.equal(route.status, 400);
      // Duplicate Host on the permissive gateway: health refuses as routes do.
      const dup = await rawHttp(gw.url, `GET ${path} HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n`);
      assert.match(dup, /^HTTP\/1\.1 400/);
      assert.match(dup, /problem\+json/);
    });
  }

  test('HTTP/1.1 without Host on /healthz → 400 problem (not a health answer)', async () => {
    const text = await rawHttp(gw.url, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 400/);
    assert.match(text, /problem\+json/);
  });
});

describe('the pipeline owns the response phase', () => {
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));

  test('no target, upstream or HTTP module runs policies: only gateway/pipeline calls runResponsePhase or onResponse', () => {
    const offenders = ['gateway/targets', 'gateway/upstream', 'gateway/http']
      .flatMap(files)
      .filter((f) => /runResponsePhase|runRequestPhase|\.onResponse\b/.test(readFileSync(f, 'utf8')));
    assert.deepEqual(offenders, []);
  });
});
