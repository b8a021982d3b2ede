import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runTests } from '../gateway/tooling/runner.ts';
import { formatCase, junitXml } from '../gateway/tooling/report.ts';
import { shippedConfigCopy, tempDir } from './helpers.ts';

const SHIPPED = ['billing-erp', 'ehr-system', 'payer', 'portal', 'process-experience'].map((n) => `policy-tests/${n}.yaml`);

/** A copy of the sandbox config with one edit, next to a copy of one shipped test file. */
function mutated(edit: (yaml: string) => string, testFile: string): string {
  const dir = dirname(shippedConfigCopy(edit)); // throws when the mutation does not change the config
  mkdirSync(join(dir, 'policy-tests'));
  copyFileSync(testFile, join(dir, 'policy-tests', 'cases.yaml'));
  return join(dir, 'policy-tests', 'cases.yaml');
}

describe('hcgw test on the shipped policy-tests/', () => {
  test('every case passes and covers every route and decision branch of routes.yaml', async () => {
    const r = await runTests(SHIPPED);
    const failed = r.cases.filter((c) => !c.ok);
    assert.deepEqual(failed.map(formatCase), []);
    assert.ok(r.cases.length >= 60, `${r.cases.length} cases`);
    assert.equal(r.coverage.routes.covered, r.coverage.routes.total);
    assert.deepEqual(r.coverage.missing, []);
    assert.equal(r.coverage.percent, 100);
  });
});

describe('hcgw test catches a broken policy (the config is mutated, the tests are not)', () => {
  test('scopes removed from the staff Patient route: the refusal cases fail with a readable diff', async () => {
    const file = mutated((y) => y.replace('      - scopes: { smart: true, smartContexts: [user, system] }\n', ''), 'policy-tests/ehr-system.yaml');
    const r = await runTests([file]);
    const c = r.cases.find((x) => x.name === 'a token without a Patient scope is refused')!;
    assert.equal(c.ok, false);
    const text = formatCase(c);
    assert.match(text, /^FAIL .*a token without a Patient scope is refused/);
    assert.match(text, /status:\n\s+- expected 403\n\s+\+ actual\s+200/);
    assert.match(text, /upstream calls:\n\s+- expected \[\]\n\s+\+ actual\s+\["ehr GET \/Patient\/p1"\]/);
    assert.ok(r.coverage.percent < 100, 'coverage of the mutant config is computed from it');
  });

  test('a purpose of use newly allowed: the refusal case fails', async () => {
    const file = mutated((y) => y.replaceAll('allowed: [TREAT, HPAYMT, PATRQT]', 'allowed: [TREAT, HPAYMT, PATRQT, HRESCH]'), 'policy-tests/ehr-system.yaml');
    const r = await runTests([file]);
    const refusals = ['a purpose the route does not allow is refused before the upstream call', 'a purpose the Patient read does not allow is refused before the upstream call', 'a purpose the Encounter read does not allow is refused before the upstream call'];
    for (const name of refusals) {
      const c = r.cases.find((x) => x.name === name)!;
      assert.equal(c.ok, false, name);
      assert.ok(c.mismatches.some((m) => m.what === 'decided by' && m.expected === 'minimize' && m.actual === null), name);
    }
  });

  test('a field added to the billing-partner claim profile: the absent-field case fails', async () => {
    const file = mutated((y) => y.replace('claim: [id, patient, encounter, status, created, payer, items, total, "diagnosis[].code"]', 'claim: [id, patient, encounter, status, created, payer, items, total, "diagnosis[].code", clinicalNotes]'), 'policy-tests/billing-erp.yaml');
    const r = await runTests([file]);
    const c = r.cases.find((x) => x.name === 'the partner with claims.read reads claims for payment')!;
    assert.equal(c.ok, false);
    assert.deepEqual(c.mismatches.map((m) => [m.what, m.expected]), [['body /data/0/clinicalNotes', 'absent']]);
  });

  test('the patient compartment removed from the portal: other-patient cases fail', async () => {
    const file = mutated((y) => y.replace('      - patient-compartment: {}\n\n  - id: portal-observation-search', '\n  - id: portal-observation-search'), 'policy-tests/portal.yaml');
    const r = await runTests([file]);
    const c = r.cases.find((x) => x.name === "another patient's record is refused without an upstream call")!;
    assert.equal(c.ok, false);
    assert.ok(c.mismatches.some((m) => m.what === 'status' && m.actual === 200));
  });
});

describe('hcgw test command', () => {
  test('exit 1, a FAIL line and JUnit XML with the failure when a case fails; exit 0 and coverage when all pass', () => {
    const dir = tempDir('hcgw-cli-test-');
    const failing = join(dir, 'failing.yaml');
    writeFileSync(failing, `config: ${resolve('routes.yaml')}
cases:
  - name: expects the wrong status <on purpose>
    request: { path: /system/ehr/Patient/p1 }
    expect: { status: 200 }
  - name: no token
    request: { path: /system/ehr/Patient/p1 }
    expect: { status: 401 }
`);
    const junit = join(dir, 'out.xml');
    const r = spawnSync(process.execPath, ['bin/hcgw.js', 'test', failing, '--junit', junit], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /FAIL .*expects the wrong status/);
    assert.match(r.stdout, /PASS .*no token/);
    assert.match(r.stdout, /1 passed, 1 failed/);
    const xml = readFileSync(junit, 'utf8');
    assert.match(xml, /<testsuites tests="2" failures="1"/);
    assert.match(xml, /name="expects the wrong status &#60;on purpose&#62;"/);
    assert.match(xml, /<failure message="status">status: expected 200, actual 401/);

    const below = spawnSync(process.execPath, ['bin/hcgw.js', 'test', failing.replace('failing', 'passing'), '--min-coverage', '50'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(below.status, 2, 'a missing file is a usage error');
  });

  test('a malformed test file is reported with its path, not run', async () => {
    const dir = tempDir('hcgw-cli-test-');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'cases:\n  - name: x\n    request: { path: no-slash }\n    expect: { stauts: 200 }\n');
    await assert.rejects(runTests([bad]), (err: { issues: Array<{ path: string }> }) => {
      const paths = err.issues.map((i) => i.path);
      assert.ok(paths.some((p) => /cases\[0\]\.request\.path/.test(p)), paths.join());
      assert.ok(paths.some((p) => /cases\[0\]\.expect/.test(p)), paths.join());
      return true;
    });
  });
});
