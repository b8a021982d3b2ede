import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestIssuer, rawSocket, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Path tricks against a gateway with protected routes (jwt) beside public ones. No request carries a
 * token, so any request the upstream receives under a protected target is a bypass; a public request
 * must arrive as exactly one segment under its target prefix, whatever the upstream does to it next
 * (decode again, fold Unicode compatibility forms, treat `\` as `/`).
 */

/** The upstream's view of one public request: the segment after `/public/`, decoded as a lenient server would. */
function lenientSegment(url: string): string {
  const path = url.split('?')[0];
  assert.ok(path.startsWith('/public/'), `outside the public target: ${url}`);
  const segment = path.slice('/public/'.length);
  let decoded = segment;
  for (let i = 0; i < 3; i++) {
    try {
      decoded = decodeURIComponent(decoded).normalize('NFKC');
    } catch {
      break;
    }
  }
  return decoded;
}

const TRICKS = [
  '/system/ehr/../admin',
  '/public/docs/../../system/ehr/Patient/p1',
  '/public/docs/..%2f..%2fsystem%2fehr%2fPatient%2fp1',
  '/public/docs/%2e%2e',
  '/public/docs/%2E%2E%2Fsecret',
  '/public/docs/.%2e/secret',
  '/public/docs/%252e%252e%252fsecret',
  '/public/docs/..%252fsecret',
  '/public/docs/a%252Fb',
  '/public/docs/a%255cb',
  '/public/docs/a%5cb',
  '/public/docs/a\\b',
  '/public/docs/..\\..\\secret',
  '/public/docs/%EF%BC%8E%EF%BC%8E',
  '/public/docs/%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret',
  '/public/docs/%EF%BC%85%EF%BC%92%EF%BD%85%EF%BC%85%EF%BC%92%EF%BD%85',
  '/public/docs/a%EF%BC%8Fb',
  '/public/docs/%E2%80%A5',
  '/public/docs/%C0%AE%C0%AE',
  '/public/docs/%E0%80%AF',
  '/public/docs/x%00',
  '/public/docs/x%0d%0aX-Injected:%201',
  '/public/docs/%zz',
  '/public/docs/.',
  '/public/./docs/x',
  '/public/docs/..',
  '//system/ehr/Patient/p1',
  '/system//ehr/Patient/p1',
  '/SYSTEM/ehr/Patient/p1',
  '/System/Ehr/patient/p1',
  '/system/ehr/Patient/p1;jsessionid=x',
  '/system/ehr/Observation;x=1',
  '/system/ehr/Observation/',
  '/system/ehr/%4Fbservation',
  '/public/docs/%61dmin',
  '/public/docs/%41dmin',
  '/public/docs;x=y/secret',
  '/public/docs/secret/',
  '/public/docs/secret.',
  '/public/docs/secret..',
  '/public/docs/...',
  '/public/docs/a;b=c',
  '/public/docs/x?next=/../../system/ehr/Patient/p1',
  '/public/docs/x#/../../admin',
  '/public/docs/caf%C3%A9',
  '/public/docs/cafe%CC%81',
];

describe('hostile paths: traversal, encodings, Unicode', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  before(async () => {
    up = await startUpstream();
    const issuer = await createTestIssuer();
    gw = await startGateway(`
version: 1
identity: { issuers: [${issuer.yaml}] }
upstreams:
  app: { url: ${up.url} }
routes:
  - id: patient
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    target: { upstream: app, path: /fhir/Patient/:id }
    policies: [ { jwt: { issuers: [test-idp] } } ]
  - id: observations
    layer: system
    match: { methods: [GET], path: /system/ehr/Observation }
    target: { upstream: app, path: /fhir/Observation }
    policies: [ { jwt: { issuers: [test-idp] } } ]
  - id: public-admin
    layer: system
    match: { methods: [GET], path: /public/docs/admin }
    target: { upstream: app, path: /fhir/admin }
    policies: [ { jwt: { issuers: [test-idp] } } ]
  - id: public-docs
    layer: system
    match: { methods: [GET], path: /public/docs/:name }
    target: { upstream: app, path: /public/:name }
`);
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  for (const path of TRICKS) {
    test(`GET ${path}`, async () => {
      const before = up.requests.length;
      const r = await rawSocket(gw.url, [`GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`]);
      assert.ok(r.status >= 200 && r.status < 500, `${r.status} ${r.text.slice(0, 120)}`);
      if (r.status >= 400) assert.match(r.text, /\r\ncontent-type: application\/problem\+json/i);
      const reached = up.requests.slice(before);
      assert.equal(reached.filter((q) => q.url.startsWith('/fhir')).length, 0, 'a protected target was reached without a token');
      for (const q of reached) {
        const segment = lenientSegment(q.url);
        assert.ok(segment !== '.' && segment !== '..' && !/[/\\\u0000-\u001f]/.test(segment), `${q.url} decodes to a path that leaves its segment`);
      }
      assert.ok(r.status === 200 || reached.length === 0, 'refused requests never reach the upstream');
    });
  }

  test('encoded unreserved characters name the same route: %61dmin is the protected admin route (401)', async () => {
    const r = await rawSocket(gw.url, ['GET /public/docs/%61dmin HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n']);
    assert.equal(r.status, 401);
  });

  test('NFC and NFD spellings are forwarded as sent, each as one segment (no normalisation by the gateway)', async () => {
    for (const [sent, expected] of [['caf%C3%A9', '/public/caf%C3%A9'], ['cafe%CC%81', '/public/cafe%CC%81']]) {
      const before = up.requests.length;
      const res = await fetch(`${gw.url}/public/docs/${sent}`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.deepEqual(up.requests.slice(before).map((q) => q.url), [expected]);
    }
  });

  test('raw non-ASCII bytes and fullwidth characters in the request line → 400 problem', async () => {
    for (const path of ['/public/docs/café', '/public/docs/cafe\u0301', '/public/docs/％２ｅ％２ｅ', '/public/docs/．．']) {
      const before = up.requests.length;
      const r = await rawSocket(gw.url, [Buffer.from(`GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`, 'utf8')]);
      assert.equal(r.status, 400, path);
      assert.equal(up.requests.length, before);
    }
  });

  test('a query cannot change the upstream path: it is re-encoded after the target path', async () => {
    const before = up.requests.length;
    const res = await fetch(`${gw.url}/public/docs/x?next=/../../system&a=%2F..%2F`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const [q] = up.requests.slice(before);
    assert.equal(q.url.split('?')[0], '/public/x');
  });
});
