import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { Client } from 'fhir-kit-client';
import { startEhr, startIdp, type DevIdp, type UpstreamServer } from '../gateway/sandbox/index.ts';
import { Gateway } from '../gateway/http/server.ts';
import { captureLogger, deadPort, rawRequest, startGateway, startUpstream, writeConfig, type TestGateway, type TestUpstream } from './helpers.ts';

/**
 * Class 7 of issue 12: upstream addresses never reach a client, and clients follow links through the
 * gateway. A standard FHIR client (fhir-kit-client) pages a search by the Bundle's `next` links; every
 * request it makes must land on the gateway, and the EHR must see only the gateway's requests.
 */
type Bundle = { resourceType: string; id?: string; meta?: unknown; total?: number; link?: Array<{ relation: string; url: string }>; entry?: Array<{ fullUrl?: string; resource: { resourceType: string; id: string; subject?: { reference: string } } }> };

const PROFILES = `
minimization:
  profiles:
    clinical:
      resources:
        Observation: [id, meta, status, code, subject]
`;

function routes(idp: DevIdp, ehr: UpstreamServer, server: string) {
  return `version: 1
server: ${server}
identity:
  issuers:
    - { name: dev, issuer: "${idp.issuer}", jwksUri: "${idp.jwksUri}", audiences: [hcgw-sandbox], algorithms: [RS256] }
upstreams:
  ehr: { url: "${ehr.url}" }
${PROFILES}
routes:
  - id: portal-obs-search
    layer: system
    match: { methods: [GET], path: /portal/fhir/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: ehr, path: /Observation }
    policies: [{ jwt: { issuers: [dev] } }, { scopes: { smart: true, smartContexts: [patient] } }, { patient-compartment: {} }]
  - id: portal-obs-read
    layer: system
    match: { methods: [GET], path: "/portal/fhir/Observation/:id" }
    fhir: { resourceType: Observation, interaction: read }
    target: { upstream: ehr, path: "/Observation/:id" }
    policies: [{ jwt: { issuers: [dev] } }, { scopes: { smart: true, smartContexts: [patient] } }, { patient-compartment: { foreignRead: not-found } }]
  - id: system-obs-search
    layer: system
    match: { methods: [GET], path: /system/ehr/Observation }
    target: { upstream: ehr, path: /Observation }
    policies: [{ jwt: { issuers: [dev] } }, { minimize: { select: [{ profile: clinical }] } }]
  - id: system-obs-read
    layer: system
    match: { methods: [GET], path: "/system/ehr/Observation/:id" }
    target: { upstream: ehr, path: "/Observation/:id" }
    policies: [{ jwt: { issuers: [dev] } }]
`;
}

describe('clients page through the gateway, never around it (issue 12, class 7)', () => {
  let idp: DevIdp;
  let ehr: UpstreamServer;
  let gw: Gateway;
  let base: string;
  let p1: string;
  let clinician: string;
  const ehrSaw: http.IncomingHttpHeaders[] = [];

  before(async () => {
    [idp, ehr] = await Promise.all([startIdp({ port: 0 }), startEhr({ port: 0 })]);
    ehr.server.on('request', (req: http.IncomingMessage) => ehrSaw.push(req.headers));
    // The public name must be known before start: a free port, named in allowedHosts.
    const port = await deadPort();
    base = `http://127.0.0.1:${port}`;
    const file = writeConfig(routes(idp, ehr, `{ allowedHosts: ["127.0.0.1:${port}"] }`));
    gw = await Gateway.create({ file, logger: captureLogger().logger, port, host: '127.0.0.1' });
    await gw.listen();
    p1 = await idp.mint({ clientId: 'portal-app', patient: 'p1', scopes: ['patient/*.rs'] });
    clinician = await idp.mint({ clientId: 'clinician-app', fhirUser: 'Practitioner/pr-1', scopes: ['user/*.rs'] });
  });
  after(async () => {
    await gw?.close(1000);
    await Promise.all([idp?.close(), ehr?.close()]);
  });

  const noUpstreamAddress = (text: string) => {
    assert.ok(!text.includes(ehr.origin), `the EHR's address leaked: ${text.slice(0, 300)}`);
    assert.ok(!text.includes(`:${ehr.port}`), 'the EHR port leaked');
  };

  async function pageAll(client: Client, first: Bundle): Promise<Bundle[]> {
    const pages = [first];
    for (let i = 0; i < 20; i++) {
      const next = (await client.nextPage({ bundle: pages.at(-1) as never })) as Bundle | undefined;
      if (!next) break;
      pages.push(next);
    }
    return pages;
  }

  test('fhir-kit-client pages a portal search one entry at a time, every request through the gateway', async () => {
    const whole = (await (await fetch(`${base}/portal/fhir/Observation`, { headers: { authorization: `Bearer ${p1}` } })).json()) as Bundle;
    const expected = whole.entry!.map((e) => e.resource.id).sort();
    assert.ok(expected.length >= 3, 'enough for several pages');
    const sawBefore = ehrSaw.length;
    const client = new Client({ baseUrl: `${base}/portal/fhir`, bearerToken: p1 });
    const first = (await client.search({ resourceType: 'Observation', searchParams: { _count: 1 } })) as Bundle;
    const pages = await pageAll(client, first);
    assert.equal(pages.length, expected.length, 'one page per Observation, then no next link');
    assert.deepEqual(pages.flatMap((p) => p.entry!.map((e) => e.resource.id)).sort(), expected);
    for (const p of pages) {
      noUpstreamAddress(JSON.stringify(p));
      assert.ok(p.link!.every((l) => l.url.startsWith(`${base}/portal/fhir/Observation?`)), JSON.stringify(p.link));
      assert.ok(p.entry!.every((e) => e.fullUrl === `${base}/portal/fhir/Observation/${e.resource.id}`), JSON.stringify(p.entry));
      assert.ok(p.entry!.every((e) => e.resource.subject?.reference === 'Patient/p1'));
    }
    // The EHR saw exactly one request per page, each the gateway's (its forwarding headers, no token).
    const seen = ehrSaw.slice(sawBefore);
    assert.equal(seen.length, pages.length);
    for (const h of seen) {
      assert.equal(h.authorization, undefined, 'the patient token reached the EHR');
      assert.equal(h['x-forwarded-host'], `127.0.0.1:${new URL(base).port}`);
    }
  });

  test('a fullUrl followed by the client reads through the gateway’s read route', async () => {
    const client = new Client({ baseUrl: `${base}/portal/fhir`, bearerToken: p1 });
    const first = (await client.search({ resourceType: 'Observation', searchParams: { _count: 1 } })) as Bundle;
    const res = await fetch(first.entry![0].fullUrl!, { headers: { authorization: `Bearer ${p1}` } });
    assert.equal(res.status, 200);
    const text = await res.text();
    noUpstreamAddress(text);
    assert.equal(JSON.parse(text).id, first.entry![0].resource.id);
  });

  test('a paging link cannot be turned into another patient’s search: the compartment still judges it', async () => {
    const client = new Client({ baseUrl: `${base}/portal/fhir`, bearerToken: p1 });
    const first = (await client.search({ resourceType: 'Observation', searchParams: { _count: 1 } })) as Bundle;
    const next = new URL(first.link!.find((l) => l.relation === 'next')!.url);
    next.searchParams.set('patient', 'p2');
    const res = await fetch(next, { headers: { authorization: `Bearer ${p1}` } });
    assert.equal(res.status, 403);
    await res.arrayBuffer();
  });

  test('a minimized system route keeps Bundle id, meta, link and fullUrl (rewritten), so paging works there too', async () => {
    const client = new Client({ baseUrl: `${base}/system/ehr`, bearerToken: clinician });
    const first = (await client.search({ resourceType: 'Observation', searchParams: { patient: 'p2', _count: 2 } })) as Bundle;
    assert.equal(typeof first.id, 'string');
    assert.ok(first.meta);
    assert.ok(first.link!.some((l) => l.relation === 'self'));
    assert.ok(first.entry!.every((e) => e.fullUrl === `${base}/system/ehr/Observation/${e.resource.id}`));
    const pages = await pageAll(client, first);
    assert.ok(pages.length >= 2);
    for (const p of pages) noUpstreamAddress(JSON.stringify(p));
    const ids = pages.flatMap((p) => p.entry!.map((e) => e.resource.id));
    assert.equal(new Set(ids).size, ids.length, 'no page repeats an entry');
  });

  test('a Host that is not allowed gets no links derived from it, and is refused', async () => {
    const res = await rawRequest(`${base}/portal/fhir/Observation`, { headers: { host: 'evil.example', authorization: `Bearer ${p1}` } });
    assert.equal(res.status, 400);
    assert.equal(res.json().type, 'https://hcgw.dev/problems/bad-request');
    assert.doesNotMatch(res.body, /evil/);
  });
});

describe('upstream URLs: rewritten when governed, removed otherwise; banners removed (issue 12, class 7)', () => {
  let up: TestUpstream;
  let withBase: TestGateway;
  let noBase: TestGateway;
  let upOrigin: string;

  before(async () => {
    up = await startUpstream((req, res) => {
      const self = `http://${req.headers.host}/fhir`;
      const path = (req.url ?? '').split('?')[0];
      res.setHeader('server', 'Apache/2.4.41 (Ubuntu) ehr-node-7');
      res.setHeader('x-powered-by', 'PHP/7.4');
      res.setHeader('x-aspnet-version', '4.0.30319');
      res.setHeader('via', '1.1 ehr-internal-lb');
      res.setHeader('content-type', 'application/fhir+json');
      if (req.method === 'POST') {
        res.statusCode = 201;
        res.setHeader('location', `${self}/Observation/new-1/_history/1`);
        res.setHeader('content-location', '/fhir/Observation/new-1');
        return res.end(JSON.stringify({ resourceType: 'Observation', id: 'new-1', status: 'final' }));
      }
      if (path === '/fhir/Observation/o1') {
        res.setHeader('content-location', `${self}/Observation/o1`);
        res.setHeader('link', `<${self}/Observation/o1>; rel="canonical"`);
        return res.end(JSON.stringify({ resourceType: 'Observation', id: 'o1', status: 'final', subject: { reference: `${self}/Patient/p1` } }));
      }
      res.end(
        JSON.stringify({
          resourceType: 'Bundle',
          type: 'searchset',
          link: [
            { relation: 'self', url: `${self}/Observation?code=x` },
            { relation: 'next', url: `${self}/Observation?code=x&_offset=1` },
            { relation: 'alternate', url: `${self}/Binary/b1` },
            { relation: 'related', url: 'http://other.example/fhir/Observation' },
          ],
          entry: [
            { fullUrl: `${self}/Observation/o1`, resource: { resourceType: 'Observation', id: 'o1', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: `${self}/Patient/p1` } } },
            { fullUrl: `${self}/Patient/p1`, resource: { resourceType: 'Patient', id: 'p1' } },
            { fullUrl: 'http://other.example/fhir/Observation/x', resource: { resourceType: 'Observation', id: 'x', status: 'final' } },
            { fullUrl: 'urn:uuid:7f3c2b1e-0000-4000-8000-000000000001', resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics: `served by ${self}/Observation on node 7, see ${self}/Binary/log-7` }] } },
          ],
        }),
      );
    });
    upOrigin = up.url;
    const cfg = (server: string, policy: string) => `version: 1
server: ${server}
upstreams:
  ehr: { url: "${up.url}/fhir" }
routes:
  - { id: search, layer: system, match: { methods: [GET], path: /api/Observation }, target: { upstream: ehr, path: /Observation }${policy} }
  - { id: read, layer: system, match: { methods: [GET], path: "/api/Observation/:id" }, target: { upstream: ehr, path: "/Observation/:id" } }
  - { id: vread, layer: system, match: { methods: [GET], path: "/api/Observation/:id/_history/:vid" }, target: { upstream: ehr, path: "/Observation/:id/_history/:vid" } }
  - { id: create, layer: system, match: { methods: [POST], path: /api/Observation }, target: { upstream: ehr, path: /Observation } }
  - { id: streamed-search, layer: system, match: { methods: [GET], path: /stream/Observation }, target: { upstream: ehr, path: /Observation } }
`;
    // A response-phase policy makes the search buffered; `validate` with no schema needs nothing else.
    withBase = await startGateway(cfg('{ publicBaseUrl: "https://api.hospital.example/gw/" }', ', policies: [{ validate: { response: { schema: { type: object } } } }]'));
    noBase = await startGateway(cfg('{}', ', policies: [{ validate: { response: { schema: { type: object } } } }]'));
  });
  after(async () => {
    await Promise.all([withBase?.close(), noBase?.close()]);
    await up?.close();
  });

  const BANNERS = ['server', 'x-powered-by', 'x-aspnet-version', 'via'];
  const get = async (gw: TestGateway, path: string, init: RequestInit = {}) => {
    const res = await fetch(`${gw.url}${path}`, init);
    const text = await res.text();
    assert.ok(!text.includes(upOrigin) && !text.includes(new URL(upOrigin).port), `upstream address in ${path}: ${text}`);
    for (const h of BANNERS) assert.equal(res.headers.get(h), null, `${path}: banner ${h}`);
    for (const [k, v] of res.headers) assert.ok(!v.includes(upOrigin), `upstream address in header ${k}`);
    return { res, text, json: () => JSON.parse(text) as Bundle & Record<string, any> };
  };

  test('Bundle links and fullUrls under publicBaseUrl; unmapped ones removed; references made relative; text blanked', async () => {
    const { res, json } = await get(withBase, '/api/Observation?code=x');
    assert.equal(res.status, 200);
    const b = json();
    assert.deepEqual(b.link, [
      { relation: 'self', url: 'https://api.hospital.example/gw/api/Observation?code=x' },
      { relation: 'next', url: 'https://api.hospital.example/gw/api/Observation?code=x&_offset=1' },
    ]);
    assert.deepEqual(b.entry!.map((e) => e.fullUrl), ['https://api.hospital.example/gw/api/Observation/o1', undefined, undefined, 'urn:uuid:7f3c2b1e-0000-4000-8000-000000000001']);
    const o1 = b.entry![0].resource as Record<string, any>;
    assert.equal(o1.subject.reference, 'Patient/p1', 'no Patient route: the reference becomes relative');
    assert.equal(o1.code.coding[0].system, 'http://loinc.org', 'code systems are not addresses');
    assert.match(JSON.stringify(b.entry![3]), /served by https:\/\/api\.hospital\.example\/gw\/api\/Observation on node 7, see \[removed\]/);
  });

  test('without publicBaseUrl or an allowed Host, every upstream URL is removed (nothing to rewrite to)', async () => {
    const { json } = await get(noBase, '/api/Observation?code=x');
    const b = json();
    assert.equal(b.link, undefined);
    assert.deepEqual(b.entry!.map((e) => e.fullUrl), [undefined, undefined, undefined, 'urn:uuid:7f3c2b1e-0000-4000-8000-000000000001']);
  });

  test('Location of a create maps to the vread route; relative Content-Location resolved then mapped', async () => {
    const { res } = await get(withBase, '/api/Observation', { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: '{"resourceType":"Observation"}' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), 'https://api.hospital.example/gw/api/Observation/new-1/_history/1');
    assert.equal(res.headers.get('content-location'), 'https://api.hospital.example/gw/api/Observation/new-1');
    const bare = await get(noBase, '/api/Observation', { method: 'POST', headers: { 'content-type': 'application/fhir+json' }, body: '{"resourceType":"Observation"}' });
    assert.equal(bare.res.headers.get('location'), null);
    assert.equal(bare.res.headers.get('content-location'), null);
  });

  test('routes without response policies: banners removed, URL headers and JSON bodies rewritten', async () => {
    const { res } = await get(withBase, '/api/Observation/o1');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-location'), 'https://api.hospital.example/gw/api/Observation/o1');
    assert.equal(res.headers.get('link'), '<https://api.hospital.example/gw/api/Observation/o1>; rel="canonical"');
    const bare = await get(noBase, '/api/Observation/o1');
    assert.equal(bare.res.headers.get('link'), null);
  });

  test('HEAD on the buffered search: no banners, no upstream address', async () => {
    const res = await rawRequest(`${withBase.url}/api/Observation?code=x`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    for (const h of BANNERS) assert.equal(res.headers[h], undefined);
    assert.ok(!JSON.stringify(res.headers).includes(upOrigin));
  });
});
