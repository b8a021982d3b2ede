import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { problem, startGateway, startUpstream, type TestGateway, type TestUpstream } from './helpers.ts';

const secret = (label: string) => `${label}-${randomBytes(24).toString('hex')}`;
const SECRETS = {
  HCGW_TEST_ADMIN_TOKEN: secret('admin'),
  HCGW_TEST_INTROSPECTION_SECRET: secret('introspect'),
  HCGW_TEST_HS_SECRET: secret('hs'),
  HCGW_TEST_SIEM_TOKEN: secret('siem'),
  HCGW_TEST_AUDIT_HASH_KEY: secret('hmac'),
};
Object.assign(process.env, SECRETS);
const UPSTREAM_PASSWORD = 'Upstream-Pa55word';

describe('admin port', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let admin: string;
  const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });

  before(async () => {
    up = await startUpstream();
    const withCreds = up.url.replace('http://', `http://svc-user:${UPSTREAM_PASSWORD}@`);
    gw = await startGateway(`
version: 1
server:
  admin: { port: 0, token: "\${env:HCGW_TEST_ADMIN_TOKEN}" }
identity:
  issuers:
    - name: partner
      issuer: https://idp.partner.test
      algorithms: [RS256]
      introspection: { url: "https://idp.partner.test/introspect", clientId: gateway, clientSecret: "\${env:HCGW_TEST_INTROSPECTION_SECRET}" }
    - { name: legacy, issuer: https://legacy.test, algorithms: [HS256], audiences: [x], secret: "\${env:HCGW_TEST_HS_SECRET}" }
upstreams:
  ehr: { url: "${withCreds}/fhir" }
  billing: { url: "${up.url}" }
audit:
  hashKey: "\${env:HCGW_TEST_AUDIT_HASH_KEY}"
  sinks: [ { kind: http, url: "${up.url}/siem", headers: { authorization: "\${env:HCGW_TEST_SIEM_TOKEN}" } } ]
routes:
  - id: patient-read
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: ehr, path: /Patient/:id }
    policies: [ { jwt: { issuers: [legacy] } }, { audit: {} } ]
  - id: claims
    layer: system
    match: { methods: [GET, POST], path: /system/billing/claims }
    target: { upstream: billing, path: /claims }
`);
    admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('binds loopback by default; /metrics moves there, health stays on both ports', async () => {
    assert.equal(gw.gw.adminAddress?.address, '127.0.0.1');
    const onMain = await fetch(`${gw.url}/metrics`);
    assert.equal(onMain.status, 404);
    await problem(onMain);
    const metrics = await fetch(`${admin}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /# TYPE hcgw_requests_total counter/);
    for (const base of [gw.url, admin]) {
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
    }
  });

  test('the admin API needs the admin bearer token', async () => {
    for (const init of [{}, bearer('wrong'), bearer(`${SECRETS.HCGW_TEST_ADMIN_TOKEN.slice(0, -1)}x`), { headers: { authorization: SECRETS.HCGW_TEST_ADMIN_TOKEN } }]) {
      const res = await fetch(`${admin}/admin/routes`, init);
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="hcgw-admin"/);
      assert.equal((await problem(res)).type, 'https://hcgw.dev/problems/unauthorized');
    }
    const ok = await fetch(`${admin}/admin/routes`, bearer(SECRETS.HCGW_TEST_ADMIN_TOKEN));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('cache-control'), 'no-store');
    await ok.arrayBuffer();
    const unknown = await fetch(`${admin}/admin/nothing`, bearer(SECRETS.HCGW_TEST_ADMIN_TOKEN));
    assert.equal(unknown.status, 404);
    await problem(unknown);
  });

  test('/admin/routes lists routes, layers, methods, paths, policy names, upstream names and the config version', async () => {
    const body = (await (await fetch(`${admin}/admin/routes`, bearer(SECRETS.HCGW_TEST_ADMIN_TOKEN))).json()) as any;
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { config: { version: string } };
    assert.equal(body.config.version, ready.config.version);
    assert.equal(body.config.routes, 2);
    assert.deepEqual(body.upstreams, ['billing', 'ehr']);
    assert.deepEqual(body.routes, [
      {
        id: 'patient-read',
        layer: 'system',
        methods: ['GET'],
        path: '/system/ehr/Patient/:id',
        fhir: { resourceType: 'Patient', interaction: 'read' },
        policies: ['jwt', 'audit'],
        upstreams: ['ehr'],
      },
      { id: 'claims', layer: 'system', methods: ['GET', 'POST'], path: '/system/billing/claims', policies: [], upstreams: ['billing'] },
    ]);
  });

  test('no configured secret, credential or upstream URL appears in the admin API', async () => {
    const text = await (await fetch(`${admin}/admin/routes`, bearer(SECRETS.HCGW_TEST_ADMIN_TOKEN))).text();
    for (const [name, value] of Object.entries(SECRETS)) assert.ok(!text.includes(value), `${name} leaked`);
    assert.ok(!text.includes(UPSTREAM_PASSWORD), 'upstream password leaked');
    assert.ok(!text.includes(new URL(up.url).host), 'upstream address leaked');
    assert.ok(!text.includes('introspect'), 'introspection endpoint leaked');
  });

  test('a reload can rotate the admin token', async () => {
    const file = gw.gw.file;
    process.env.HCGW_TEST_ADMIN_TOKEN_NEXT = secret('admin-next');
    writeFileSync(file, readFileSync(file, 'utf8').replace('HCGW_TEST_ADMIN_TOKEN}', 'HCGW_TEST_ADMIN_TOKEN_NEXT}'));
    await gw.gw.reload();
    assert.equal((await fetch(`${admin}/admin/routes`, bearer(SECRETS.HCGW_TEST_ADMIN_TOKEN))).status, 401);
    const res = await fetch(`${admin}/admin/routes`, bearer(process.env.HCGW_TEST_ADMIN_TOKEN_NEXT));
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});

describe('admin port without a token, and no admin port', () => {
  let up: TestUpstream;
  let noToken: TestGateway;
  let none: TestGateway;
  const routes = (url: string) => `upstreams: { u: { url: "${url}" } }
routes: [ { id: r, layer: system, match: { path: /r }, target: { upstream: u, path: /r } } ]
`;
  before(async () => {
    up = await startUpstream();
    noToken = await startGateway(`version: 1\nserver: { admin: { port: 0 } }\n${routes(up.url)}`);
    none = await startGateway(`version: 1\n${routes(up.url)}`);
  });
  after(async () => {
    await noToken.close();
    await none.close();
    await up.close();
  });

  test('without a token the admin API is off; health and metrics still answer', async () => {
    const admin = `http://127.0.0.1:${noToken.gw.adminAddress!.port}`;
    const res = await fetch(`${admin}/admin/routes`, { headers: { authorization: 'Bearer anything-at-all-here' } });
    assert.equal(res.status, 404);
    await problem(res);
    assert.equal((await fetch(`${admin}/metrics`)).status, 200);
    assert.equal((await fetch(`${admin}/healthz`)).status, 200);
  });

  test('without server.admin no admin port is opened and /metrics stays on the main port', async () => {
    assert.equal(none.gw.adminAddress, undefined);
    const res = await fetch(`${none.url}/metrics`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});
