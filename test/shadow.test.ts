import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadConfigFile } from '../gateway/config/load.ts';
import { runTests } from '../gateway/tooling/runner.ts';
import { formatCase } from '../gateway/tooling/report.ts';
import { TestWorld } from '../gateway/tooling/world.ts';
import { assertIssues, configIssues, shippedConfigCopy } from './helpers.ts';

/** The sandbox config with chosen policies switched to `mode: shadow` and the debug header on. */
function shadowConfig(): string {
  return shippedConfigCopy((shipped) => {
    const yaml = shipped
      .replace('  host: 127.0.0.1\n', '  host: 127.0.0.1\n  debugDecisions: true\n')
      .replace("      - scopes: { smart: true, smartContexts: [user, system] }\n", "      - scopes: { smart: true, smartContexts: [user, system], mode: shadow }\n")
      .replace('limits: [{ limit: 20, window: 1s }, { limit: 2000, window: 1h }] }', 'limits: [{ limit: 20, window: 1s }, { limit: 2000, window: 1h }], mode: shadow }')
      .replace("      - minimize: { purposeOfUse: { allowed: [TREAT, HPAYMT, PATRQT] }, select: [{ when: { purposeOfUse: [HPAYMT] }, profile: billing-partner }, { profile: clinical }] }\n      - consent: { source: { upstream: ehr } }",
        "      - minimize: { purposeOfUse: { allowed: [TREAT, HPAYMT, PATRQT] }, select: [{ when: { purposeOfUse: [HPAYMT] }, profile: billing-partner }, { profile: clinical }], mode: shadow }\n      - consent: { source: { upstream: ehr }, mode: shadow }")
      .replace("      - patient-compartment: {}\n\n  - id: portal-observation-search", "      - patient-compartment: { mode: shadow }\n\n  - id: portal-observation-search")
      .replace("  - id: ehr-encounter-read\n    layer: system\n    match: { methods: [GET], path: /system/ehr/Encounter/:id }\n    fhir: { resourceType: Encounter, interaction: read }\n    target: { upstream: ehr, path: /Encounter/:id }\n    policies:\n      - audit: {}\n      - jwt: { issuers: [sandbox-idp] }\n      - scopes: { smart: true, smartContexts: [user, system] }\n",
        "  - id: ehr-encounter-read\n    layer: system\n    match: { methods: [GET], path: /system/ehr/Encounter/:id }\n    fhir: { resourceType: Encounter, interaction: read }\n    target: { upstream: ehr, path: /Encounter/:id }\n    policies:\n      - audit: {}\n      - jwt: { issuers: [sandbox-idp], mode: shadow }\n      - scopes: { smart: true, smartContexts: [user, system], mode: shadow }\n");
    assert.equal((yaml.match(/mode: shadow/g) ?? []).length, 7, 'every intended policy switched');
    return yaml;
  });
}

const CASES = `
cases:
  # scopes needs jwt's principal: with jwt alone in shadow it would refuse (no-principal), so both are switched.
  - name: jwt in shadow lets a request without token through and says it would deny
    request: { path: /system/ehr/Encounter/e-p1-1 }
    expect: { status: 200, equals: { /id: e-p1-1 }, decision: { policy: null }, headers: { x-hcgw-decisions: "jwt=would-deny(missing-token), scopes=would-deny(no-principal), minimize=allow, minimize=modify(fields-minimized)" } }

  - name: scopes in shadow let a token without the Patient scope read, recorded as would-deny
    request: { path: /system/ehr/Patient/p1 }
    caller: { issuer: sandbox-idp, client: clinician-app, scopes: [user/Observation.rs] }
    expect: { status: 200, headers: { x-hcgw-decisions: "jwt=allow, scopes=would-deny(smart-scope-missing), minimize=allow, minimize=modify(fields-minimized)" }, audit: { /policy/decisions/1/outcome: would-deny } }

  - name: rate-limit in shadow counts but does not throttle a burst
    request: { path: /system/ehr/Observation, query: { patient: p1 } }
    caller: { issuer: sandbox-idp, client: shadow-burst, scopes: [user/*.rs] }
    purpose: TREAT
    upstreams:
      ehr: [{ path: /Consent, body: { resourceType: Bundle, type: searchset, entry: [] } }, { body: { resourceType: Bundle, type: searchset, entry: [] } }]
    burst: 150
    expect: { status: 200, audit: { /policy/decisions/2: { policy: rate-limit, outcome: would-deny, reason: rate-limited } } }

  - name: minimize in shadow refuses nothing (a disallowed purpose) and removes no field
    request: { path: /system/ehr/Observation, query: { patient: p2 } }
    caller: { issuer: sandbox-idp, client: clinician-app, scopes: [user/*.rs] }
    purpose: HRESCH
    expect: { status: 200, entries: 5, audit: { /policy/decisions/4: { policy: minimize, outcome: would-deny, reason: purpose-not-allowed } } }

  - name: consent in shadow reports what it would remove and removes nothing
    request: { path: /system/ehr/Observation, query: { patient: p2 } }
    caller: { issuer: sandbox-idp, client: clinician-app, scopes: [user/*.rs] }
    purpose: TREAT
    expect: { status: 200, entries: 5, headers: { x-hcgw-decisions: "jwt=allow, scopes=allow, rate-limit=allow, lane=allow, minimize=allow, consent=allow, consent=would-modify(consent-partial), minimize=would-modify(fields-minimized)" } }

  - name: patient-compartment in shadow lets another patient's record through, recorded as would-deny
    request: { path: /portal/fhir/Patient/p2 }
    caller: { issuer: sandbox-idp, client: portal-app, scopes: [patient/*.rs], patient: p1 }
    expect: { status: 200, equals: { /id: p2 }, headers: { x-hcgw-decisions: "jwt=allow, scopes=allow, patient-compartment=would-deny(other-patient-path), patient-compartment=allow" } }
`;

describe('mode: shadow (evaluate, record, do not enforce)', () => {
  test('jwt, scopes, rate-limit, minimize, consent and patient-compartment in shadow', async () => {
    const config = shadowConfig();
    const file = join(dirname(config), 'shadow.yaml');
    writeFileSync(file, `config: ${config}\n${CASES}`);
    const r = await runTests([file]);
    assert.deepEqual(r.cases.filter((c) => !c.ok).map(formatCase), []);
    assert.equal(r.cases.length, 6);
  });

  test('shadow decisions are counted in hcgw_shadow_decisions_total{policy,reason}', async () => {
    const config = shadowConfig();
    const { config: cfg } = await loadConfigFile(config);
    const world = await TestWorld.create({ upstreams: cfg.upstreams, sandbox: true });
    const { gw, url } = await world.gateway(config);
    try {
      world.prepare(undefined, dirname(config));
      for (let i = 0; i < 3; i++) assert.equal((await fetch(`${url}/system/ehr/Encounter/e-p1-1`)).status, 200);
      const text = await gw.metrics.registry.metrics();
      assert.match(text, /hcgw_shadow_decisions_total\{policy="jwt",reason="missing-token"\} 3/);
      assert.doesNotMatch(text, /hcgw_policy_denials_total\{policy="jwt"/, 'not a denial');
    } finally {
      await gw.close(1000);
      await world.close();
    }
  });

  test('mode accepts enforce and shadow only, on any policy', async () => {
    const yaml = (mode: string) => `version: 1
identity: { issuers: [{ name: idp, issuer: "https://idp.example", secret: "0123456789abcdef0123456789abcdef", audiences: [api], algorithms: [HS256] }] }
upstreams: { up: { url: "http://127.0.0.1:9" } }
routes:
  - id: r
    layer: system
    match: { methods: [GET], path: /r }
    target: { upstream: up, path: /r }
    policies:
      - jwt: { issuers: [idp], mode: ${mode} }
`;
    assertIssues(await configIssues(yaml('dry-run')), [/routes\[0\]\.policies\[0\]\.jwt\.mode: must be one of enforce, shadow/]);
    assert.deepEqual(await configIssues(yaml('shadow')), []);
    assert.deepEqual(await configIssues(yaml('enforce')), []);
  });
});
