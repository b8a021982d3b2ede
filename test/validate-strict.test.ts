import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { loadConfigFile } from '../gateway/config/load.ts';
import { blocking, formatLint, lintConfig, type LintFinding } from '../gateway/tooling/lint/lint.ts';
import { LINT_RULES } from '../gateway/tooling/lint/rules.ts';
import { assertIssues, configIssues, editRoute, shippedConfigCopy } from './helpers.ts';

const SHIPPED_EHR = 'ehr:     { url: http://127.0.0.1:9101/fhir, timeoutMs: 5000 }';
const ISSUERS = 'identity:\n  issuers:\n';

/**
 * One mutation of the shipped config per rule: each still compiles (the gateway would start with it),
 * which is the point of a lint rule.
 */
type Mutant = { rule: string; what: string; edit: (yaml: string) => string; at: { path: string; route?: string } };
const inRoute = (id: string, from: string | RegExp, to: string) => (y: string) => editRoute(y, id, (b) => b.replace(from, to));
const MUTANTS: Mutant[] = [
  // scopes needs jwt's principal, so a route that loses jwt and still compiles has lost scopes too.
  {
    rule: 'HCGW-L001',
    what: 'jwt (and the scopes that need its principal) removed from a FHIR route',
    edit: inRoute('ehr-encounter-read', '      - jwt: { issuers: [sandbox-idp] }\n      - scopes: { smart: true, smartContexts: [user, system] }\n', ''),
    at: { path: 'routes[3].policies', route: 'ehr-encounter-read' },
  },
  { rule: 'HCGW-L002', what: 'minimize removed from a FHIR search', edit: inRoute('ehr-observation-search', / {6}- minimize: .*\n/, ''), at: { path: 'routes[1].policies', route: 'ehr-observation-search' } },
  {
    rule: 'HCGW-L003',
    what: 'forwardAuthorization on the EHR upstream',
    edit: (y) => y.replace(SHIPPED_EHR, SHIPPED_EHR.replace(' }', ', forwardAuthorization: true }')),
    at: { path: 'routes[8].target', route: 'portal-observation-search' },
  },
  { rule: 'HCGW-L004', what: 'trustProxy: true', edit: (y) => y.replace('trustProxy: false', 'trustProxy: true'), at: { path: 'server.trustProxy' } },
  {
    rule: 'HCGW-L005',
    what: 'an issuer without audiences (no route trusts it, so it compiles)',
    edit: (y) => y.replace(ISSUERS, `${ISSUERS}    - { name: spare-idp, issuer: https://idp.spare.example, jwksUri: https://idp.spare.example/jwks, algorithms: [RS256] }\n`),
    at: { path: 'identity.issuers[0]' },
  },
  { rule: 'HCGW-L006', what: 'patient context allowed without patient-compartment', edit: inRoute('ehr-patient-read', '[user, system]', '[patient, user, system]'), at: { path: 'routes[0].policies', route: 'ehr-patient-read' } },
  { rule: 'HCGW-L007', what: 'scopes removed from a FHIR route', edit: inRoute('portal-billing-claims', '      - scopes: { allOf: [billing.read] }\n', ''), at: { path: 'routes[10].policies', route: 'portal-billing-claims' } },
  { rule: 'HCGW-L008', what: 'a policy left in shadow mode', edit: inRoute('portal-overview', 'upstream: ehr } }', 'upstream: ehr }, mode: shadow }'), at: { path: 'routes[13].policies[3]', route: 'portal-overview' } },
  { rule: 'HCGW-L009', what: 'server.debugDecisions on (loopback, so it compiles)', edit: (y) => y.replace('  host: 127.0.0.1\n', '  host: 127.0.0.1\n  debugDecisions: true\n'), at: { path: 'server.debugDecisions' } },
];

async function lintFile(file: string) {
  const loaded = await loadConfigFile(file);
  assert.deepEqual(loaded.issues, [], 'the config is well formed');
  return lintConfig(loaded.config);
}

const open = (fs: LintFinding[], rule: string) => fs.filter((f) => f.rule === rule && f.waived === undefined);

function hcgw(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/hcgw.js', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe('hcgw validate --strict: lint rules with stable ids, fixes and per-route waivers', () => {
  test('the rule table and the mutants cover the same ids, each rule with a fix', () => {
    assert.deepEqual(MUTANTS.map((m) => m.rule), LINT_RULES.map((r) => r.id));
    for (const r of LINT_RULES) assert.match(r.fix, /\w{3,}/, r.id);
  });

  test('the shipped routes.yaml has no finding that is not waived, and every waiver is used', async () => {
    const r = await lintFile('routes.yaml');
    assert.deepEqual(blocking(r), []);
    assert.deepEqual(r.unusedWaivers, []);
    for (const f of r.findings) assert.ok((f.waived ?? '').length >= 10, `${f.rule} on ${f.route?.id} waived with a reason`);
  });

  for (const m of MUTANTS) {
    test(`${m.rule} fires on ${m.what}, and not on the shipped config`, async () => {
      const file = shippedConfigCopy(m.edit);
      assert.deepEqual(await configIssues({ file }), [], 'the mutant compiles: only the lint can catch it');
      const found = open((await lintFile(file)).findings, m.rule);
      assert.ok(found.length >= 1, `${m.rule} did not fire`);
      const f = found.find((x) => x.path === m.at.path);
      assert.ok(f, `${m.rule} at ${m.at.path}: got ${found.map((x) => x.path).join(', ')}`);
      assert.equal(f.route?.id, m.at.route);
      assert.ok(f.message && f.fix);
      assert.deepEqual(open((await lintFile('routes.yaml')).findings, m.rule), []);
    });
  }

  test('trustProxy with a list of proxies is not a finding', async () => {
    const r = await lintFile(shippedConfigCopy((y) => y.replace('trustProxy: false', 'trustProxy: [10.0.0.0/8]')));
    assert.deepEqual(open(r.findings, 'HCGW-L004'), []);
  });

  test('a waiver on the route accepts that finding there, printed as waived with its reason', async () => {
    const reason = 'Billing portal: claims carry no FHIR clinical data in this test';
    const file = shippedConfigCopy((y) =>
      editRoute(y, 'portal-billing-claims', (b) =>
        b.replace('      - scopes: { allOf: [billing.read] }\n', '').replace('      - patient-compartment: {}\n', `      - patient-compartment: {}\n    lint: { waive: [{ rule: HCGW-L007, reason: "${reason}" }] }\n`),
      ),
    );
    const r = await lintFile(file);
    const f = r.findings.find((x) => x.rule === 'HCGW-L007' && x.route?.id === 'portal-billing-claims');
    assert.equal(f?.waived, reason);
    assert.deepEqual(blocking(r), []);
    assert.match(formatLint('routes.yaml', r), new RegExp(`waived HCGW-L007 routes\\[10\\]\\.policies \\(route "portal-billing-claims"\\).*\\n    reason: ${reason}`));
  });

  test('a waiver without a reason, or for an unknown rule, is a config error (start refuses it too)', async () => {
    const waive = (w: string) => shippedConfigCopy((y) => editRoute(y, 'portal-billing-claims', (b) => b.replace('      - patient-compartment: {}\n', `      - patient-compartment: {}\n    lint: { waive: [${w}] }\n`)));
    assertIssues(await configIssues({ file: waive('{ rule: HCGW-L007 }') }), [/^routes\[10\]\.lint\.waive\[0\]\.reason: is required$/]);
    assertIssues(await configIssues({ file: waive('{ rule: HCGW-L007, reason: " " }') }), [/^routes\[10\]\.lint\.waive\[0\]\.reason: /]);
    assertIssues(await configIssues({ file: waive('{ rule: HCGW-L999, reason: "a reason long enough" }') }), [/^routes\[10\]\.lint\.waive\[0\]\.rule: must be one of: HCGW-L001, .*HCGW-L009$/]);
  });

  test('a waiver that matches nothing is reported, so stale waivers get removed', async () => {
    const file = shippedConfigCopy((y) => editRoute(y, 'portal-billing-claims', (b) => b.replace('      - patient-compartment: {}\n', '      - patient-compartment: {}\n    lint: { waive: [{ rule: HCGW-L001, reason: "no longer needed here" }] }\n')));
    const r = await lintFile(file);
    assert.deepEqual(r.unusedWaivers, [{ route: { id: 'portal-billing-claims', index: 10 }, rule: 'HCGW-L001' }]);
    assert.match(formatLint(file, r), /warning: routes\[10\]\.lint\.waive \(route "portal-billing-claims"\): HCGW-L001 finds nothing here/);
  });

  test('the CLI: shipped config exits 0 under --strict; a mutant exits 1 with the fix, and 0 without --strict', () => {
    const shipped = hcgw('validate', '--strict', 'routes.yaml');
    assert.equal(shipped.status, 0, shipped.err);
    assert.match(shipped.out, /routes\.yaml: strict: OK, \d+ waived\n$/);
    const mutant = shippedConfigCopy(MUTANTS[0].edit);
    const strict = hcgw('validate', '--strict', mutant);
    assert.equal(strict.status, 1, strict.err);
    assert.match(strict.out, /HCGW-L001 routes\[3\]\.policies \(route "ehr-encounter-read"\): FHIR route without an enforcing jwt policy.*\n    fix: add `- jwt: /);
    assert.match(strict.out, /strict: 1 finding/);
    const plain = hcgw('validate', mutant);
    assert.equal(plain.status, 0, plain.err);
    assert.doesNotMatch(plain.out, /HCGW-L/);
  });
});
