import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { problem, rawRequest, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Class 4 of issue 12: the method the gateway authorizes is the method the upstream executes. The upstream
 * here honours every override convention (as Rails, express method-override, ASP.NET and Spring can), so a
 * refused override is proved by what it would otherwise have executed.
 */
function effectiveMethod(method: string, headers: Record<string, unknown>, url: string, body: string): string {
  for (const h of ['x-http-method-override', 'x-http-method', 'x-method-override']) if (typeof headers[h] === 'string') return (headers[h] as string).toUpperCase();
  const q = new URLSearchParams(url.split('?')[1] ?? '');
  for (const [k, v] of q) if (k.toLowerCase() === '_method') return v.toUpperCase();
  const form = /_method"?\s*(?:=|\r\n\r\n)\s*"?([A-Za-z]+)/i.exec(body);
  if (form) return form[1].toUpperCase();
  return method;
}

describe('method override is refused on every route (issue 12, class 4)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const executed: string[] = [];
  const TYPE = 'https://hcgw.dev/problems/method-override';

  before(async () => {
    up = await startUpstream((req, res, body) => {
      executed.push(effectiveMethod(req.method ?? '', req.headers, req.url ?? '', body));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true }));
    });
    gw = await startGateway(`version: 1
upstreams:
  records: { url: "${up.url}" }
routes:
  - { id: create-only, layer: system, match: { methods: [POST], path: /records }, target: { upstream: records, path: /records } }
  - { id: read-only, layer: system, match: { methods: [GET], path: "/records/:id" }, target: { upstream: records, path: "/records/:id" } }
  - id: process-create
    layer: process
    match: { methods: [POST], path: /process/records }
    target: { compose: [{ name: r, upstream: records, method: POST, path: /records, body: { x: "{{ body.x ?? 1 }}" } }] }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const refused = async (name: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string }) => {
    const before = up.requests.length;
    const res = await rawRequest(`${gw.url}${path}`, { method: opts.method ?? 'POST', headers: opts.headers, body: opts.body });
    assert.equal(res.status, 400, `${name}: ${res.body}`);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/, name);
    assert.equal(res.json().type, TYPE, name);
    assert.equal(up.requests.length, before, `${name}: the upstream was called`);
  };

  const json = { 'content-type': 'application/json' };
  const VARIANTS: Array<[string, string, { method?: string; headers?: Record<string, string>; body?: string }]> = [
    ['X-HTTP-Method-Override: DELETE', '/records', { headers: { ...json, 'X-HTTP-Method-Override': 'DELETE' }, body: '{}' }],
    ['X-HTTP-Method: DELETE', '/records', { headers: { ...json, 'X-HTTP-Method': 'DELETE' }, body: '{}' }],
    ['X-Method-Override: PUT', '/records', { headers: { ...json, 'X-Method-Override': 'PUT' }, body: '{}' }],
    ['lower-case header, bodiless', '/records', { headers: { 'x-http-method-override': 'delete' } }],
    ['override header on a GET route', '/records/r2', { method: 'GET', headers: { 'X-HTTP-Method-Override': 'DELETE' } }],
    ['empty override header', '/records', { headers: { 'X-HTTP-Method-Override': '' } }],
    ['?_method=DELETE', '/records?_method=DELETE', {}],
    ['?_METHOD=delete (case)', '/records?_METHOD=delete', {}],
    ['?%5Fmethod=DELETE (encoded name)', '/records?%5Fmethod=DELETE', {}],
    ['?a=1&_method=DELETE (not first)', '/records?a=1&_method=DELETE', {}],
    ['?_method on a GET route', '/records/r2?_method=DELETE', { method: 'GET' }],
    ['form body _method=DELETE', '/records', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=x&_method=DELETE' }],
    ['multipart field _method', '/records', { headers: { 'content-type': 'multipart/form-data; boundary=XyZ' }, body: '--XyZ\r\nContent-Disposition: form-data; name="_method"\r\n\r\nDELETE\r\n--XyZ--\r\n' }],
    ['JSON body {"_method":"DELETE"}', '/records', { headers: json, body: '{"_method":"DELETE","x":1}' }],
    ['JSON body on a process route', '/process/records', { headers: json, body: '{"_method":"DELETE"}' }],
    ['header on a process route', '/process/records', { headers: { ...json, 'X-HTTP-Method-Override': 'DELETE' }, body: '{"x":2}' }],
  ];
  for (const [name, path, opts] of VARIANTS) test(`refused before the upstream: ${name}`, () => refused(name, path, opts));

  test('without an override the upstream executes exactly the authorized method', async () => {
    executed.length = 0;
    for (const [method, path, body] of [['POST', '/records', '{"method":"DELETE","_methodology":1}'], ['GET', '/records/r1?_methods=x&method=DELETE', undefined], ['POST', '/process/records', '{"x":3}']] as const) {
      const res = await rawRequest(`${gw.url}${path}`, { method, headers: body ? json : {}, body });
      assert.equal(res.status, 200, res.body);
    }
    assert.deepEqual(executed, ['POST', 'GET', 'POST']);
  });

  test('the problem names no method and echoes nothing of the request', async () => {
    const res = await fetch(`${gw.url}/records?_method=DELETE`, { method: 'POST', headers: { 'x-http-method-override': 'PATCH<script>' } });
    const p = await problem(res);
    assert.doesNotMatch(JSON.stringify(p), /PATCH|script|DELETE/);
  });
});
