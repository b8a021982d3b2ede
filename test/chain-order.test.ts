import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assertIssues, configIssues, writeConfig } from './helpers.ts';

const BIN = fileURLToPath(new URL('../bin/hcgw.js', import.meta.url));

const HEAD = `
version: 1
identity:
  issuers:
    - { name: idp, issuer: https://idp.example, secret: "0123456789abcdef0123456789abcdef", algorithms: [HS256], audiences: [api] }
upstreams:
  ehr: { url: http://127.0.0.1:9/fhir }
minimization:
  profiles:
    partner: { resources: { Observation: [id, status] } }
routes:
`;
const route = (id: string, methods: string, policies: string[]) => `
  - id: ${id}
    layer: system
    match: { methods: [${methods}], path: /${id} }
    fhir: { resourceType: Observation, interaction: ${methods === 'GET' ? 'search' : 'create'} }
    target: { upstream: ehr, path: /Observation }
    policies:
${policies.map((p) => `      - ${p}`).join('\n')}
`;
const JWT = 'jwt: { issuers: [idp] }';
const MIN = 'minimize: { select: [{ profile: partner }] }';
const CONSENT = 'consent: { source: { file: ./consents.json } }';
const COMPARTMENT = 'patient-compartment: {}';
const IDEM = 'idempotency: {}';

function config(...routes: string[]): string {
  const file = writeConfig(HEAD + routes.join(''));
  writeFileSync(join(dirname(file), 'consents.json'), '[]');
  return file;
}

describe('chain order is checked against the policies’ declared dependencies', () => {
  it('idempotency before jwt would replay one caller’s response to another: rejected with a fix', async () => {
    const issues = await configIssues({ file: config(route('a', 'POST', [IDEM, JWT])) });
    assertIssues(issues, [/^routes\[0\]\.policies\[0\]\.idempotency: `idempotency` needs `principal`.*move `jwt` above `idempotency`/]);
  });

  it('idempotency without any authentication is rejected (keys are always scoped to a caller)', async () => {
    const issues = await configIssues({ file: config(route('a', 'POST', [IDEM])) });
    assertIssues(issues, [/idempotency: `idempotency` needs `principal`, which no policy above it provides: add `jwt` above `idempotency`/]);
  });

  it('idempotency below minimize would store unminimized PHI: rejected', async () => {
    const issues = await configIssues({ file: config(route('a', 'POST', [JWT, MIN, IDEM])) });
    assertIssues(issues, [/^routes\[0\]\.policies\[2\]\.idempotency: .*minimized-body.*move `idempotency` above `minimize`/]);
  });

  it('consent above minimize would judge an already minimized body: rejected', async () => {
    const issues = await configIssues({ file: config(route('a', 'GET', [JWT, CONSENT, MIN])) });
    assertIssues(issues, [/^routes\[0\]\.policies\[2\]\.minimize: .*consent-filtered-body.*move `minimize` above `consent`/]);
  });

  it('patient-compartment above minimize would filter after references were removed: rejected', async () => {
    const issues = await configIssues({ file: config(route('a', 'GET', [JWT, COMPARTMENT, MIN])) });
    assertIssues(issues, [/policies\[2\]\.minimize: .*compartment-filtered-body.*move `minimize` above `patient-compartment`/]);
  });

  it('scopes or patient-compartment without jwt above them: rejected', async () => {
    const issues = await configIssues({ file: config(route('a', 'GET', ['scopes: { allOf: [x] }', JWT]), route('b', 'GET', [COMPARTMENT])) });
    assertIssues(issues, [/routes\[0\]\.policies\[0\]\.scopes: .*move `jwt` above `scopes`/, /routes\[1\]\.policies\[0\]\.patient-compartment: .*add `jwt` above/]);
  });

  it('every mistake of every route is reported at once; the right orders pass', async () => {
    const bad = await configIssues({ file: config(route('a', 'POST', [IDEM, JWT]), route('b', 'GET', [JWT, CONSENT, MIN])) });
    assert.equal(bad.length, 2, bad.join('\n'));
    const good = await configIssues({ file: config(route('a', 'POST', [JWT, IDEM, MIN]), route('b', 'GET', [JWT, MIN, CONSENT]), route('c', 'GET', [JWT, 'scopes: { allOf: [x] }', MIN, COMPARTMENT])) });
    assert.deepEqual(good, []);
  });

  it('hcgw validate names the offending policy’s path and exits 1', () => {
    const file = config(route('a', 'POST', [IDEM, JWT]));
    let out = '';
    let status = 0;
    try {
      execFileSync(process.execPath, [BIN, 'validate', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      const e = err as { status: number; stdout: string; stderr: string };
      status = e.status;
      out = e.stdout + e.stderr;
    }
    assert.equal(status, 1);
    assert.match(out, /routes\[0\]\.policies\[0\]\.idempotency: `idempotency` needs `principal`/);
  });
});
