import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../scripts/chromium.ts';
import { createTestIssuer, problem, startGateway, startUpstream, tempDir, type TestGateway, type TestIssuer, type TestUpstream } from './helpers.ts';
import { redactSettings } from '../gateway/console/describe.ts';
import { histogramQuantile, summarizeTraffic } from '../gateway/console/public/traffic.js';

const ADMIN_TOKEN = `console-admin-${randomBytes(24).toString('hex')}`;
const HASH_KEY = `console-hmac-${randomBytes(24).toString('hex')}`;
Object.assign(process.env, { HCGW_TEST_CONSOLE_TOKEN: ADMIN_TOKEN, HCGW_TEST_CONSOLE_HASH: HASH_KEY });

const CONSOLE_APIS: Array<[string, string]> = [
  ['GET', '/admin/console/features'],
  ['GET', '/admin/console/routes'],
  ['GET', '/admin/console/traffic'],
  ['GET', '/admin/audit/search'],
  ['POST', '/admin/audit/verify'],
];

describe('operations console', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let idp: TestIssuer;
  let admin: string;
  let browser: Browser;
  let auditFile: string;
  const bearer = (t = ADMIN_TOKEN) => ({ authorization: `Bearer ${t}` });

  before(async () => {
    up = await startUpstream((req, res) => {
      const id = /\/Patient\/([^/?]+)/.exec(req.url ?? '')?.[1] ?? 'x';
      res.setHeader('content-type', 'application/fhir+json');
      res.end(JSON.stringify({ resourceType: 'Patient', id, name: [{ family: 'Synthetic' }] }));
    });
    idp = await createTestIssuer('console-idp');
    const dir = tempDir();
    auditFile = join(dir, 'audit.log');
    gw = await startGateway(`
version: 1
server:
  admin: { port: 0, token: "\${env:HCGW_TEST_CONSOLE_TOKEN}" }
identity:
  issuers: [ ${idp.yaml} ]
upstreams:
  ehr: { url: "${up.url}/fhir" }
  billing: { url: "${up.url}" }
audit:
  hashKey: "\${env:HCGW_TEST_CONSOLE_HASH}"
  flushIntervalMs: 10
  sinks: [ { kind: file, path: "${auditFile}" } ]
minimization:
  profiles:
    billing-partner: { description: Payers, resources: { Patient: [id] } }
    clinical: { description: Clinicians, resources: { Patient: [id, name] } }
routes:
  - id: patient-read
    layer: system
    match: { methods: [GET], path: /system/ehr/Patient/:id }
    fhir: { resourceType: Patient, interaction: read }
    target: { upstream: ehr, path: /Patient/:id }
    policies:
      - jwt: { issuers: [console-idp] }
      - scopes: { smart: true }
      - minimize: { select: [ { when: { purposeOfUse: [HPAYMT] }, profile: billing-partner }, { profile: clinical } ] }
      - audit: {}
  - id: claims
    layer: system
    match: { methods: [GET, POST], path: /system/billing/claims }
    target: { upstream: billing, path: /claims }
    policies: [ { rate-limit: { key: client, limit: 100, window: 1m } } ]
`);
    admin = `http://127.0.0.1:${gw.gw.adminAddress!.port}`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await gw.close();
    await up.close();
  });

  async function signedIn(): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(`${admin}/console/`);
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#login');
    await page.waitForSelector('#config-version');
    return page;
  }

  test('a wrong token is refused and not kept; the right one signs in', async () => {
    const page = await browser.newPage();
    try {
      await page.goto(`${admin}/console/`);
      for (const wrong of ['wrong-token', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1)]) {
        await page.fill('#token', wrong);
        await page.click('#login');
        await page.waitForFunction(() => document.getElementById('login-error')?.textContent === 'Token refused.');
        assert.equal(await page.evaluate(() => sessionStorage.length), 0);
        assert.equal(await page.isHidden('#nav'), true);
      }
      await page.fill('#token', ADMIN_TOKEN);
      await page.click('#login');
      await page.waitForSelector('#config-version');
      const version = (await (await fetch(`${admin}/admin/routes`, { headers: bearer() })).json()).config.version as string;
      assert.equal(await page.textContent('#config-version'), version.slice(0, 16));
      // Without SLA indicators the front page says so instead of showing an empty panel.
      assert.match((await page.textContent('#slo')) ?? '', /No SLA indicators/);
      // The token lives in this tab's session storage, not in a cookie.
      assert.deepEqual(await page.context().cookies(), []);
    } finally {
      await page.close();
    }
  });

  test('the routes page lists every configured route with its chain in order, scopes and profiles per purpose', async () => {
    const page = await signedIn();
    try {
      await page.goto(`${admin}/console/#/routes`);
      await page.waitForSelector('td [data-route="claims"]');
      const rows = await page.$$eval('tbody tr', (trs) =>
        trs.filter((tr) => tr.querySelector('[data-route]')).map((tr) => ({
          id: tr.querySelector('[data-route]')!.getAttribute('data-route'),
          cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
          chain: [...tr.querySelectorAll('ol li b')].map((b) => b.textContent),
        })),
      );
      assert.deepEqual(rows.map((r) => r.id), ['patient-read', 'claims']);
      assert.deepEqual(rows[0].chain, ['jwt', 'scopes', 'minimize', 'audit']);
      assert.deepEqual(rows[1].chain, ['rate-limit']);
      assert.deepEqual(rows[0].cells.slice(1, 4), ['system', 'GET /system/ehr/Patient/:id', 'ehr']);
      assert.match(rows[0].cells[6]!, /HPAYMT→ billing-partner/);
      assert.match(rows[0].cells[6]!, /any purpose→ clinical/);
      assert.match(rows[0].cells[5]!, /"smart":true/);
      assert.match(rows[1].cells[4]!, /"limit":100/);
    } finally {
      await page.close();
    }
  });

  test('a request through the gateway shows in the live view and in audit search; verify chain says OK', async () => {
    const token = await idp.mint({ clientId: 'console-client', scope: 'system/Patient.rs' });
    const res = await fetch(`${gw.url}/system/ehr/Patient/p-1`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    const requestId = res.headers.get('x-request-id')!;
    const page = await signedIn();
    try {
      await page.goto(`${admin}/console/#/traffic`);
      await page.waitForSelector('#per-route [data-route="patient-read"]');
      const cells = await page.$$eval('#per-route tr', (trs) => trs.find((tr) => tr.querySelector('[data-route="patient-read"]'))!.textContent);
      assert.match(cells!, /^patient-read1/);
      assert.equal(await page.$$eval('#traffic-chart canvas', (c) => c.length), 1);

      await page.goto(`${admin}/console/#/audit`);
      await page.fill('#audit-route', 'patient-read');
      await page.fill('#audit-client', 'console-client');
      await page.waitForFunction((id) => document.getElementById('audit-results')?.textContent?.includes(id) ?? false, requestId, { timeout: 5000, polling: 200 }).catch(async () => {
        // The record is flushed within flushIntervalMs; search again once it is on disk.
        await page.click('#audit-search');
        await page.waitForFunction((id) => document.getElementById('audit-results')?.textContent?.includes(id) ?? false, requestId, { timeout: 5000 });
      });
      const results = (await page.textContent('#audit-results'))!;
      assert.match(results, /patient-read/);
      assert.ok(!results.includes('p-1'), 'patient id shown');
      await page.fill('#audit-client', 'someone-else');
      await page.click('#audit-search');
      await page.waitForFunction(() => /^0 records/.test(document.getElementById('audit-results')?.textContent ?? ''));

      await page.click('#verify-chain');
      await page.waitForFunction(() => /^(OK|BROKEN)/.test(document.getElementById('verify-result')?.textContent ?? ''));
      assert.match((await page.textContent('#verify-result'))!, /^OK: \d+ records/);
    } finally {
      await page.close();
    }
  });

  test('verify reports a tampered audit file', async () => {
    const text = readFileSync(auditFile, 'utf8');
    assert.ok(text.length > 0);
    try {
      // One recorded outcome changed from success (0) to minor failure (4): the line's hash no longer holds.
      const tampered = text.replace('"outcome":"0"', '"outcome":"4"');
      assert.notEqual(tampered, text);
      writeFileSync(auditFile, tampered);
      const r = await (await fetch(`${admin}/admin/audit/verify`, { method: 'POST', headers: bearer() })).json();
      assert.equal(r.ok, false);
      assert.equal(r.sinks[0].file, 'audit.log');
      assert.match(r.sinks[0].reason, /altered/);
    } finally {
      writeFileSync(auditFile, text);
    }
  });

  test('events and policy tests pages say "not configured" without a backend', async () => {
    const page = await signedIn();
    try {
      for (const hash of ['#/events', '#/tests']) {
        await page.goto(`${admin}/console/${hash}`);
        await page.waitForSelector('#not-configured');
      }
    } finally {
      await page.close();
    }
  });

  test('the console is not served on the main listener', async () => {
    for (const path of ['/console', '/console/', '/console/index.html', '/console/app.js', '/admin/console/routes', '/admin/audit/search']) {
      const res = await fetch(`${gw.url}${path}`, { headers: bearer() });
      assert.equal(res.status, 404, path);
      await problem(res);
    }
  });

  test('every console API call needs the admin token', async () => {
    for (const [method, path] of CONSOLE_APIS) {
      for (const headers of <Array<Record<string, string>>>[{}, bearer('wrong'), bearer(`${ADMIN_TOKEN}x`), { authorization: ADMIN_TOKEN }, { cookie: `token=${ADMIN_TOKEN}` }]) {
        const res = await fetch(`${admin}${path}`, { method, headers });
        assert.equal(res.status, 401, `${method} ${path}`);
        await problem(res);
      }
      const ok = await fetch(`${admin}${path}`, { method, headers: bearer() });
      assert.equal(ok.status, 200, `${method} ${path}`);
      assert.equal(ok.headers.get('cache-control'), 'no-store');
      await ok.arrayBuffer();
    }
  });

  test('no secret, credential or patient identifier in any console response', async () => {
    const token = await idp.mint({ clientId: 'console-client' });
    await (await fetch(`${gw.url}/system/ehr/Patient/secret-patient-42`, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
    await new Promise((r) => setTimeout(r, 100));
    for (const [method, path] of CONSOLE_APIS) {
      const text = await (await fetch(`${admin}${path}`, { method, headers: bearer() })).text();
      for (const secret of [ADMIN_TOKEN, HASH_KEY, token, 'secret-patient-42', new URL(up.url).host, auditFile]) assert.ok(!text.includes(secret), `${path} leaks ${secret.slice(0, 12)}`);
    }
  });

  test('static pages: strict CSP, no inline script, no framing', async () => {
    const res = await fetch(`${admin}/console/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.ok(!csp.includes('unsafe'), csp);
    const html = await res.text();
    for (const m of html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)) {
      assert.match(m[0], /\ssrc="/);
      assert.equal(m[1].trim(), '');
    }
    assert.ok(!/\son[a-z]+=/i.test(html), 'inline event handler');
    for (const path of ['/console/../package.json', '/console/%2e%2e/package.json', '/console/.env', '/console/vendor/uplot/../../package.json']) {
      const r = await fetch(`${admin}${path}`);
      assert.notEqual(r.status, 200, path);
      await r.arrayBuffer();
    }
  });

  test('audit search refuses malformed queries with a problem document', async () => {
    for (const q of ['from=yesterday', 'to=13/13/2020', 'limit=0', 'limit=100000', 'limit=abc', 'outcome=5', 'route=a&route=b']) {
      const res = await fetch(`${admin}/admin/audit/search?${q}`, { headers: bearer() });
      assert.equal(res.status, 400, q);
      const p = await problem(res);
      assert.equal(p.type, 'https://hcgw.dev/problems/bad-request');
      assert.ok(!JSON.stringify(p).includes('stack'));
    }
  });
});

describe('console helpers', () => {
  test('policy settings are shown with secrets and URLs redacted', () => {
    const out = redactSettings({
      limit: 5,
      clientSecret: 'c-secret',
      source: { upstream: 'ehr', url: 'https://user:pw@internal.example/x' },
      headers: { authorization: 'Bearer abc' },
      list: ['a', 'http://10.0.0.1/'],
      nested: { deeper: { apiKey: 'k', token: 't', hashKey: 'kk', password: 'p', key: 'client' } },
    });
    assert.deepEqual(out, {
      limit: 5,
      clientSecret: '[redacted]',
      source: { upstream: 'ehr', url: '[url]' },
      headers: '[redacted]',
      list: ['a', '[url]'],
      nested: { deeper: { apiKey: '[redacted]', token: '[redacted]', hashKey: '[redacted]', password: '[redacted]', key: 'client' } },
    });
  });

  test('histogram quantiles interpolate like Prometheus', () => {
    const b: Array<[number, number]> = [[0.001, 0], [0.01, 50], [0.1, 100], [Infinity, 100]];
    assert.ok(Math.abs(histogramQuantile(0.5, b)! - 0.01) < 1e-12);
    assert.ok(Math.abs(histogramQuantile(0.99, b)! - 0.0982) < 1e-9);
    assert.equal(histogramQuantile(0.5, [[0.1, 0], [Infinity, 0]]), undefined);
    assert.equal(histogramQuantile(0.99, [[0.1, 1], [Infinity, 10]]), 0.1);
  });

  test('traffic summary: rates over the window, 5xx share, denials', () => {
    const snap = (at: number, ok: number, err: number) => ({
      at,
      metrics: [
        { name: 'hcgw_requests_total', values: [{ labels: { route: 'r', status_class: '2xx' }, value: ok }, { labels: { route: 'r', status_class: '5xx' }, value: err }] },
        { name: 'hcgw_policy_denials_total', values: [{ labels: { policy: 'jwt', reason: 'expired' }, value: 3 }] },
      ],
    });
    const s = summarizeTraffic(snap(3000, 30, 10), snap(1000, 10, 0));
    assert.equal(s.total, 40);
    assert.equal(s.rps, 15);
    assert.equal(s.errorRate, (100 * 10) / 30);
    assert.deepEqual(s.denials, [{ policy: 'jwt', reason: 'expired', value: 3 }]);
  });
});
