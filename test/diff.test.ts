import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compareSurfaces, diffConfigs, renderText, surfaceOf, type Change } from '../gateway/tooling/diff/index.ts';
import type { Surface } from '../gateway/tooling/diff/surface.ts';
import { sandboxVariant, writeConfig } from './helpers.ts';

/** The real CLI, as a pipeline runs it (node start-up each time). */
const realCli = (...args: string[]) => spawnSync(process.execPath, ['bin/hcgw.js', 'diff', ...args], { encoding: 'utf8', timeout: 60_000 });


let shipped: Surface;
before(async () => {
  shipped = await surfaceOf('routes.yaml');
});

const show = (cs: Change[]) => cs.map((c) => `${c.effect} ${c.scope} ${c.aspect}: ${c.text}`).join('\n');

/**
 * The shipped config → the variant must widen with exactly the expected change (and nothing else widens
 * or narrows), and the variant → the shipped config must narrow with the mirror change and nothing widen.
 */
interface Expected { scope: string; aspect: string; text: RegExp }

/** `variant` widens exactly as `expected` says (one change each, in order) and the way back narrows. */
async function assertWidens(variant: string, expected: Expected | Expected[], reverse: RegExp) {
  const all = Array.isArray(expected) ? expected : [expected];
  const edited = await surfaceOf(variant);
  const forward = compareSurfaces(shipped, edited);
  assert.equal(forward.length, all.length, show(forward));
  const back = compareSurfaces(edited, shipped);
  assert.equal(back.length, all.length, show(back));
  all.forEach((e, i) => {
    assert.equal(forward[i].effect, 'widening', show(forward));
    assert.equal(forward[i].scope, e.scope);
    assert.equal(forward[i].aspect, e.aspect);
    assert.match(forward[i].text, e.text);
    assert.equal(back[i].effect, 'narrowing', show(back));
    assert.equal(back[i].scope, e.scope);
    assert.match(back[i].text, reverse);
  });
}

describe('hcgw diff: widening one way is narrowing the other', () => {
  test('a scope removed from a route', async () => {
    const v = sandboxVariant(['scopes: { allOf: [erp.write, billing.write] }', 'scopes: { allOf: [erp.write] }']);
    await assertWidens(v, { scope: 'route encounter-supply-usage', aspect: 'scopes.required scopes (allOf)', text: /^no longer requires billing\.write$/ }, /^now requires billing\.write$/);
  });

  test('a field added to a minimization profile', async () => {
    const v = sandboxVariant(['Encounter: [id, period, type, serviceProvider]', 'Encounter: [id, period, type, serviceProvider, diagnosis]']);
    const exposed = /^Encounter fields newly exposed: diagnosis \(profile portal; any caller; purposes any\)$/;
    await assertWidens(
      v,
      // The portal's event subscription uses the same profile: its notifications widen too.
      [{ scope: 'route portal-overview', aspect: 'minimize.fields', text: exposed }, { scope: 'subscription portal-p1', aspect: 'minimize.fields', text: exposed }],
      /^Encounter fields no longer exposed: diagnosis /,
    );
  });

  test('fields count per purpose as minimize picks profiles: first match wins, client-bound entries for every purpose they match', async () => {
    const v = sandboxVariant(['Observation: [id, meta, status,', 'Observation: [id, meta, status, note,']);
    const edited = await surfaceOf(v);
    assert.deepEqual(compareSurfaces(shipped, edited).map((c) => [c.effect, c.scope, c.text]), [
      // HPAYMT is decided by the billing-partner entry before the catch-all clinical one (the same select on
      // the three EHR routes that use the clinical profile).
      ['widening', 'route ehr-patient-read', 'Observation fields newly exposed: note (profile clinical; any caller; purposes PATRQT, TREAT, none)'],
      ['widening', 'route ehr-observation-search', 'Observation fields newly exposed: note (profile clinical; any caller; purposes PATRQT, TREAT, none)'],
      ['widening', 'route ehr-encounter-read', 'Observation fields newly exposed: note (profile clinical; any caller; purposes PATRQT, TREAT, none)'],
      ['widening', 'route billing-claims-search', 'Observation fields newly exposed: note (profile clinical; client clinician-app; purposes TREAT)'],
    ]);
  });

  test('a masked field released in clear widens (and the masked form goes)', async () => {
    const v = sandboxVariant(['Patient: [id, birthDate, { field: "identifier[].value", transform: mask }]', 'Patient: [id, birthDate, "identifier[].value"]']);
    const changes = compareSurfaces(shipped, await surfaceOf(v)).filter((c) => c.scope === 'route partner-billing-claims');
    assert.deepEqual(changes.map((c) => [c.effect, c.text]), [
      ['widening', 'Patient fields newly exposed: identifier[].value (profile billing-partner; any caller; purposes HPAYMT)'],
      ['narrowing', 'Patient fields no longer exposed: identifier[].value (mask) (profile billing-partner; any caller; purposes HPAYMT)'],
    ]);
  });

  test('anyOf: one alternative scope fewer narrows', async () => {
    const v = sandboxVariant(['scopes: { anyOf: [billing.read, claims.read] }', 'scopes: { anyOf: [billing.read] }']);
    const changes = compareSurfaces(shipped, await surfaceOf(v));
    assert.deepEqual(changes.map((c) => [c.effect, c.scope, c.aspect, c.text]), [['narrowing', 'route encounter-financial-summary', 'scopes.alternative scopes (anyOf)', 'no longer grants claims.read']]);
  });

  test('a purpose of use allowed', async () => {
    const v = sandboxVariant(['purposeOfUse: { required: true, allowed: [HPAYMT] }', 'purposeOfUse: { required: true, allowed: [HPAYMT, COVERAGE] }']);
    await assertWidens(v, { scope: 'route partner-billing-claims', aspect: 'minimize.purposes of use allowed', text: /^now grants COVERAGE$/ }, /^no longer grants COVERAGE$/);
  });

  test('a rate limit raised', async () => {
    const v = sandboxVariant(['algorithm: sliding, limit: 10, window: 10s', 'algorithm: sliding, limit: 25, window: 10s']);
    await assertWidens(v, { scope: 'route erp-items', aspect: 'rate-limit.limits', text: /^every caller: 10\/10s \(1\/s\) → 25\/10s \(2\.5\/s\)$/ }, /^every caller: 25\/10s/);
  });

  test('rate limits compare as limit ÷ window: the same count over a shorter window widens', async () => {
    const v = sandboxVariant(['algorithm: sliding, limit: 10, window: 10s', 'algorithm: sliding, limit: 10, window: 5s']);
    await assertWidens(v, { scope: 'route erp-items', aspect: 'rate-limit.limits', text: /^every caller: 10\/10s \(1\/s\) → 10\/5s \(2\/s\)$/ }, /→ 10\/10s \(1\/s\)$/);
  });

  test('a per-client override raised widens for that client only', async () => {
    const v = sandboxVariant(['window: 1m, overrides: { partner-billing: { limit: 300 } } }\n      - lane', 'window: 1m, overrides: { partner-billing: { limit: 600 } } }\n      - lane']);
    await assertWidens(v, { scope: 'route billing-claims-search', aspect: 'rate-limit.limits', text: /^client partner-billing: 300\/1m \(5\/s\) → 600\/1m \(10\/s\)$/ }, /^client partner-billing: 600\/1m/);
  });

  test('a policy removed', async () => {
    const v = sandboxVariant(['      - patient-compartment: { foreignRead: not-found }\n', '']);
    await assertWidens(v, { scope: 'route portal-observation-read', aspect: 'policy patient-compartment', text: /^removed$/ }, /^added$/);
  });

  test('a policy moved from enforce to shadow', async () => {
    const v = sandboxVariant(['      - consent: { source: { upstream: ehr } }     #', '      - consent: { source: { upstream: ehr }, mode: shadow }     #']);
    await assertWidens(v, { scope: 'route ehr-observation-search', aspect: 'consent.mode', text: /^enforce → shadow$/ }, /^shadow → enforce$/);
  });

  test('a route added', async () => {
    const v = sandboxVariant([
      '  # ---- system APIs: one backend each ----\n',
      '  # ---- system APIs: one backend each ----\n  - id: ehr-condition-search\n    layer: system\n    match: { methods: [GET], path: /system/ehr/Condition }\n    target: { upstream: ehr, path: /Condition }\n    policies:\n      - audit: {}\n      - jwt: { issuers: [sandbox-idp] }\n\n',
    ]);
    await assertWidens(v, { scope: 'route ehr-condition-search', aspect: 'route', text: /^added \(GET \/system\/ehr\/Condition; policies: audit, jwt\)$/ }, /^removed/);
  });

  test('an audience added to an issuer', async () => {
    const v = sandboxVariant(['audiences: [hcgw-sandbox]', 'audiences: [hcgw-sandbox, partner-api]']);
    await assertWidens(v, { scope: 'issuer sandbox-idp', aspect: 'audiences', text: /^now grants partner-api$/ }, /^no longer grants partner-api$/);
  });

  test('an upstream target moved', async () => {
    const v = sandboxVariant(['target: { upstream: ehr, path: /Encounter/:id }', 'target: { upstream: ehr, path: /Encounter/:id/$everything }']);
    const changes = compareSurfaces(shipped, await surfaceOf(v));
    // Data now goes somewhere else: the new target widens, the old one no longer used narrows.
    assert.deepEqual(changes.map((c) => [c.effect, c.scope, c.aspect, c.text]), [
      ['widening', 'route ehr-encounter-read', 'upstream targets', 'now grants http://127.0.0.1:9101/fhir/Encounter/:id/$everything'],
      ['narrowing', 'route ehr-encounter-read', 'upstream targets', 'no longer grants http://127.0.0.1:9101/fhir/Encounter/:id'],
    ]);
  });
});

describe('hcgw diff: what it cannot classify widens (fail closed)', () => {
  test('a rate-limit key changed widens both ways', async () => {
    const edited = await surfaceOf(sandboxVariant(['rate-limit: { key: client, algorithm: sliding', 'rate-limit: { key: ip, algorithm: sliding']));
    for (const changes of [compareSurfaces(shipped, edited), compareSurfaces(edited, shipped)]) {
      assert.deepEqual(changes.map((c) => [c.effect, c.scope, c.aspect]), [['widening', 'route erp-items', 'rate-limit.key']], show(changes));
    }
  });

  test('policies reordered on a route widen, in both directions', async () => {
    const ehrEncounter = '    target: { upstream: ehr, path: /Encounter/:id }\n    policies:\n';
    const edited = await surfaceOf(sandboxVariant([`${ehrEncounter}      - audit: {}\n      - jwt: { issuers: [sandbox-idp] }\n`, `${ehrEncounter}      - jwt: { issuers: [sandbox-idp] }\n      - audit: {}\n`]));
    for (const changes of [compareSurfaces(shipped, edited), compareSurfaces(edited, shipped)]) {
      assert.deepEqual(changes.map((c) => [c.effect, c.scope, c.aspect]), [['widening', 'route ehr-encounter-read', 'policy order']], show(changes));
    }
  });

  test('an audit setting changed widens and its value is never printed', async () => {
    const v = sandboxVariant(['hashKey: sandbox-only-audit-hash-key-0123456789abcdef', 'hashKey: another-audit-hash-key-0123456789abcdef0']);
    const r = await diffConfigs('routes.yaml', v);
    assert.deepEqual(r.changes.map((c) => [c.effect, c.scope, c.aspect]), [['widening', 'config audit', 'audit']]);
    assert.doesNotMatch(JSON.stringify(r) + renderText(r), /hash-key/);
  });
});

describe('hcgw diff: event subscriptions are consumers like routes', () => {
  test('an event type and a destination added widen, a policy dropped widens; query strings and secrets are not printed', async () => {
    // The shipped sandbox's `crm` subscription, edited.
    const crm = '      filter: { types: [encounter.discharged] }\n      subscriber: { clientId: crm-vendor }\n      policies:\n        - audit: {}\n';
    const after = sandboxVariant(
      [crm, '      filter: { types: [encounter.discharged, encounter.admitted] }\n      subscriber: { clientId: crm-vendor }\n      policies:\n'],
      ['url: http://127.0.0.1:9105/hooks/crm,', 'url: "http://127.0.0.1:9105/other?token=sekrit",'],
    );
    const r = await diffConfigs('routes.yaml', after);
    assert.deepEqual(r.changes.map((c) => [c.effect, c.scope, c.aspect, c.text]), [
      ['widening', 'subscription crm', 'event types', 'now grants encounter.admitted'],
      ['widening', 'subscription crm', 'destination', 'now grants webhook http://127.0.0.1:9105/other'],
      ['narrowing', 'subscription crm', 'destination', 'no longer grants webhook http://127.0.0.1:9105/hooks/crm'],
      ['widening', 'subscription crm', 'delivery', 'changed (not classified: counts as widening)'],
      ['widening', 'subscription crm', 'policy audit', 'removed'],
    ]);
    assert.doesNotMatch(JSON.stringify(r) + renderText(r), /sekrit|whsec_/);
    assert.equal((await diffConfigs(after, 'routes.yaml')).changes.find((c) => c.aspect === 'policy audit')?.effect, 'narrowing');
  });
});

describe('hcgw diff on the command line (bin/hcgw.js)', () => {
  test('identical files: no change, exit 0', () => {
    const r = realCli('routes.yaml', sandboxVariant(['# Sandbox configuration', '# The sandbox configuration']));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /: no change to the governed surface\n$/);
  });

  test('a widening change: text names it, exit 2; the reverse: narrowing, exit 0', async () => {
    const v = sandboxVariant(['      - scopes: { allOf: [claims.read] }\n', '']);
    const r = realCli('routes.yaml', v);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stdout, /: 1 widening, 0 narrowing\n\nroute partner-billing-claims\n {2}WIDENING {3}policy scopes: removed\n$/);
    const back = await diffConfigs(v, 'routes.yaml');
    assert.equal(back.widening, false);
    assert.match(renderText(back), /: 0 widening, 1 narrowing\n\nroute partner-billing-claims\n {2}narrowing {2}policy scopes: added\n$/);
  });

  test('--json: the report for machines', async () => {
    const v = sandboxVariant(['audiences: [hcgw-sandbox]', 'audiences: [hcgw-sandbox, partner-api]'], ['limit: 60, window: 1m, overrides: { partner-billing: { limit: 300 } } }\n      - minimize', 'limit: 30, window: 1m, overrides: { partner-billing: { limit: 300 } } }\n      - minimize']);
    const r = realCli('routes.yaml', v, '--json');
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      old: 'routes.yaml',
      new: v,
      widening: true,
      counts: { widening: 1, narrowing: 1 },
      changes: [
        { effect: 'narrowing', scope: 'route partner-billing-claims', aspect: 'rate-limit.limits', text: 'every caller: 60/1m (1/s) → 30/1m (0.5/s)' },
        { effect: 'widening', scope: 'issuer sandbox-idp', aspect: 'audiences', text: 'now grants partner-api' },
      ],
    });
  });

  test('a config error is printed as validate prints it, exit 1', () => {
    const bad = writeConfig('version: 1\nroutes: []\nupstreams: {}\nidentity: { issuers: [] }\nserver: { prot: 1 }\n');
    const r = realCli('routes.yaml', bad);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `${bad}: 1 error\n  ${bad}: server.prot: unknown key\n`);
  });

  test('a usage error is exit 1, never 2 (which would read as a verdict)', () => {
    const r = realCli('routes.yaml');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /diff takes two files/);
    const help = realCli('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^usage: hcgw diff OLD\.yaml NEW\.yaml \[--json\]/);
  });
});
