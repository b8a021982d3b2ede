// `npm run screenshots`: runs the sandbox (routes.yaml on ephemeral ports, synthetic data only), sends some
// traffic through it, and photographs each console page into docs/img/ with headless Chromium.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Gateway } from '../gateway/http/server.ts';
import { createLogger } from '../gateway/ops/logger.ts';
import { EPHEMERAL_PORTS, startSandbox } from '../gateway/sandbox/index.ts';
import { launchChromium } from './chromium.ts';

const OUT = join(import.meta.dirname, '..', 'docs', 'img');
const token = `screenshots-${randomBytes(16).toString('hex')}`;
process.env.HCGW_SCREENSHOT_TOKEN = token;

const sb = await startSandbox({ ports: EPHEMERAL_PORTS });
const dir = mkdtempSync(join(tmpdir(), 'hcgw-screenshots-'));
const origin = (u: string) => new URL(u).origin;
const yaml = readFileSync(join(import.meta.dirname, '..', 'routes.yaml'), 'utf8')
  .replace(/admin: \{ port: 9901 \}/, 'admin: { port: 0, token: "${env:HCGW_SCREENSHOT_TOKEN}" }')
  .replaceAll('http://127.0.0.1:9100', origin(sb.urls.idp))
  .replaceAll('http://127.0.0.1:9101', origin(sb.urls.ehr))
  .replaceAll('http://127.0.0.1:9102', origin(sb.urls.billing))
  .replaceAll('http://127.0.0.1:9103', origin(sb.urls.erp));
// Paths in routes.yaml are relative to it: the schemas and plugins it names are linked beside the copy.
for (const d of ['schemas', 'plugins']) symlinkSync(join(import.meta.dirname, '..', d), join(dir, d));
const file = join(dir, 'routes.yaml');
writeFileSync(file, yaml);
const gw = await Gateway.create({ file, logger: createLogger({ level: 'error' }), port: 0, host: '127.0.0.1' });
const main = `http://127.0.0.1:${(await gw.listen()).port}`;
const admin = `http://127.0.0.1:${gw.adminAddress!.port}`;
const browser = await launchChromium();
try {
  // Traffic: allowed reads, a refused caller, an unknown patient.
  const clinician = await sb.idp.mint({ clientId: 'ehr-viewer', scopes: ['user/Patient.rs', 'user/Observation.rs', 'user/Encounter.rs'], fhirUser: 'Practitioner/pr-1' });
  const billing = await sb.idp.mint({ clientId: 'partner-billing', scopes: ['system/*.rs', 'claims.read'] });
  const send = async (path: string, t?: string) => void (await (await fetch(main + path, { headers: t ? { authorization: `Bearer ${t}`, 'x-purpose-of-use': 'TREAT' } : {} })).arrayBuffer());
  const traffic = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await send('/system/ehr/Patient/pat-1001', clinician);
      await send('/system/ehr/Observation?patient=pat-1001', clinician);
      await send('/system/billing/claims', billing);
      if (i % 3 === 0) await send('/system/ehr/Patient/pat-1001');
    }
  };
  await traffic(10);
  mkdirSync(OUT, { recursive: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const shot = async (name: string) => {
    await page.screenshot({ path: join(OUT, `console-${name}.png`), fullPage: false });
    console.log(`docs/img/console-${name}.png`);
  };
  await page.goto(`${admin}/console/`);
  await page.fill('#token', 'not-the-admin-token');
  await page.click('#login');
  await page.waitForFunction(() => document.getElementById('login-error')?.textContent === 'Token refused.');
  await shot('login');
  await page.fill('#token', token);
  await page.click('#login');
  await page.waitForSelector('#config-version');
  await shot('overview');
  await page.goto(`${admin}/console/#/routes`);
  await page.waitForSelector('[data-route]');
  await shot('routes');
  await page.goto(`${admin}/console/#/traffic`);
  await page.waitForSelector('#per-route [data-route]');
  for (let i = 0; i < 3; i++) {
    await traffic(8);
    await page.waitForTimeout(3100);
  }
  await shot('traffic');
  await page.goto(`${admin}/console/#/audit`);
  await page.waitForSelector('#audit-results table');
  await page.click('#verify-chain');
  await page.waitForFunction(() => /^(OK|BROKEN)/.test(document.getElementById('verify-result')?.textContent ?? ''));
  await shot('audit');
  await page.goto(`${admin}/console/#/events`);
  await page.waitForSelector('#not-configured');
  await shot('events');
} finally {
  await browser.close();
  await gw.close(1000);
  await sb.close();
  rmSync(dir, { recursive: true, force: true });
}
