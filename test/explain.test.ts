import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { explainArgs, explainOutput } from '../gateway/cli/commands/explain.ts';
import { formatExplanation } from '../gateway/tooling/explain/format.ts';
import { explain, type Explanation } from '../gateway/tooling/explain/run.ts';
import { removedBetween } from '../gateway/tooling/explain/removed.ts';

/**
 * Four README scenarios through `hcgw explain`. Their outputs are what docs/policy-tooling.md shows between
 * `<!-- explain:NAME -->` markers: this test writes them there with UPDATE_DOCS=1 and fails when the doc is
 * out of date, so the doc is produced by the tool, never typed by hand.
 */
const DOC = 'docs/policy-tooling.md';

const SCENARIOS: Array<{ name: string; args: string[]; check(text: string, e: Explanation): void }> = [
  {
    name: 'clinician-minimized',
    args: ['GET', '/system/ehr/Observation?patient=p1', '--client', 'clinician-app', '--scope', 'user/*.rs', '--purpose', 'TREAT', '--answer', 'ehr/Observation=@docs/examples/observations-p1.json'],
    check(text, e) {
      assert.equal(e.status, 200);
      assert.equal(e.route?.id, 'ehr-observation-search');
      assert.deepEqual(e.removed?.fields.map((f) => f.path), ['Observation.interpretation', 'Observation.note', 'Observation.performer', 'Observation.specimen']);
      assert.deepEqual(e.removed?.resources, {});
      assert.deepEqual(e.decisions.at(-1), { policy: 'minimize', outcome: 'modify', reason: 'fields-minimized', detail: { profile: 'clinical', removed: 0 } });
      // Paths and counts, never values: the note's text and the specimen reference stay out.
      assert.doesNotMatch(text, /anxious|sp-1|Practitioner\/pr-1/);
    },
  },
  {
    name: 'clinician-consent',
    args: ['GET', '/system/ehr/Observation?patient=p2', '--client', 'clinician-app', '--scope', 'user/*.rs', '--purpose', 'TREAT'],
    check(text, e) {
      assert.equal(e.status, 200);
      assert.deepEqual(e.consent, { decision: 'partial', consentIds: ['consent-p2-psy'] });
      assert.deepEqual(e.removed?.resources, { Observation: 3 }, "p2's three PSY-labelled Observations are withheld");
      assert.ok(e.decisions.some((d) => d.policy === 'consent' && d.outcome === 'modify' && d.reason === 'consent-partial' && d.detail?.removed === 3));
      assert.doesNotMatch(text, /PHQ|GAD|depression|obs-p2/);
    },
  },
  {
    name: 'patient-app-other-patient',
    args: ['GET', '/portal/fhir/Patient/p2', '--client', 'portal-app', '--patient', 'p1', '--scope', 'patient/*.rs billing.read'],
    check(_text, e) {
      assert.equal(e.status, 403);
      assert.equal(e.route?.id, 'portal-patient-read');
      assert.deepEqual(e.decisions.at(-1), { policy: 'patient-compartment', outcome: 'deny', reason: 'other-patient-path' });
      assert.deepEqual(e.upstreamCalls, [], 'refused before the EHR was asked');
    },
  },
  {
    name: 'missing-scope',
    args: ['GET', '/partner/billing/claims?patient=p1', '--client', 'partner-billing', '--scope', 'billing.read', '--purpose', 'HPAYMT'],
    check(_text, e) {
      assert.equal(e.status, 403);
      assert.match(e.problem?.type ?? '', /insufficient-scope$/);
      assert.deepEqual(e.decisions.at(-1), { policy: 'scopes', outcome: 'deny', reason: 'scope-missing' });
      assert.deepEqual(e.notReached, ['rate-limit', 'minimize']);
    },
  },
];

/** The command line as a reader would type it (single quotes where the shell would need them). */
const shell = (args: string[]) => ['npx hcgw explain', ...args.map((a) => (/^[\w./=@:-]+$/.test(a) ? a : `'${a}'`))].join(' ');

function block(name: string, commandLine: string, output: string): string {
  return `<!-- explain:${name} -->\n\`\`\`\n$ ${commandLine}\n${output}\`\`\`\n<!-- /explain:${name} -->`;
}

describe('hcgw explain: one request through the real chain, decision by decision', () => {
  const outputs = new Map<string, string>();

  for (const s of SCENARIOS) {
    test(`${s.name}: ${shell(s.args)}`, async () => {
      // The command line read as the CLI reads it; one run gives both forms (--json prints `e` itself).
      const e = await explain((await explainArgs(s.args)).request);
      const text = formatExplanation(e);
      s.check(text, e);
      for (const d of e.decisions) assert.match(text, new RegExp(`^  ${d.policy}\\s+${d.outcome}\\s*${d.reason ?? ''}`, 'm'), 'the text shows each decision of the JSON');
      assert.match(text, new RegExp(`^status\\s+${e.status}`, 'm'));
      outputs.set(s.name, text);
    });
  }

  test('docs/policy-tooling.md shows exactly these outputs (UPDATE_DOCS=1 rewrites them)', () => {
    assert.equal(outputs.size, SCENARIOS.length, 'every scenario ran');
    const doc = readFileSync(DOC, 'utf8');
    let updated = doc;
    for (const s of SCENARIOS) {
      const re = new RegExp(`<!-- explain:${s.name} -->[\\s\\S]*?<!-- /explain:${s.name} -->`);
      assert.match(doc, re, `${DOC} has the markers <!-- explain:${s.name} --> … <!-- /explain:${s.name} -->`);
      updated = updated.replace(re, () => block(s.name, shell(s.args), outputs.get(s.name)!));
    }
    if (updated === doc) return;
    if (process.env.UPDATE_DOCS === '1') writeFileSync(DOC, updated);
    else assert.fail(`${DOC} is out of date with hcgw explain's output: run UPDATE_DOCS=1 npm test -- test/explain.test.ts`);
  });

  test('--json prints the explanation as one JSON object', async () => {
    const e = JSON.parse(await explainOutput([...SCENARIOS[3].args, '--json'])) as Explanation;
    assert.equal(e.route?.id, 'partner-billing-claims');
    assert.deepEqual(e.decisions.map((d) => `${d.policy}=${d.outcome}`), ['jwt=allow', 'scopes=deny']);
  });

  test('what was removed: whole resources by type, lost and rewritten field paths, never values', () => {
    const patient = (extra: object) => ({ resourceType: 'Patient', id: 'p9', birthDate: '1970-01-01', ...extra });
    const upstream = {
      resourceType: 'Bundle',
      entry: [
        { resource: patient({ identifier: [{ system: 'urn:mrn', value: 'MRN-123456' }], telecom: [{ value: '555-0100' }] }) },
        { resource: { resourceType: 'Observation', id: 'o1', status: 'final' } },
      ],
    };
    const delivered = { resourceType: 'Bundle', entry: [{ resource: patient({ identifier: [{ system: 'urn:mrn', value: '******3456' }] }) }] };
    const r = removedBetween(upstream, delivered);
    assert.deepEqual(r, { resources: { Observation: 1 }, fields: [{ path: 'Patient.telecom', count: 1 }], rewritten: [{ path: 'Patient.identifier[].value', count: 1 }] });
    assert.doesNotMatch(JSON.stringify(r), /MRN|3456|555/);
    assert.equal(removedBetween(upstream, structuredClone(upstream)), undefined, 'nothing removed: nothing to show');
    // Not FHIR (a billing document): compared from its root.
    assert.deepEqual(removedBetween({ id: 'c1', total: 10, notes: 'x' }, { id: 'c1', total: 10 })?.fields, [{ path: 'notes', count: 1 }]);
  });

  test('usage mistakes are reported, not run', async () => {
    await assert.rejects(explainOutput(['GET']), /explain takes METHOD and PATH/);
    await assert.rejects(explainOutput(['GET', '/x', '--answer', 'no-equals-sign']), /expected UPSTREAM\[\/PATH\]=@file\.json/);
    await assert.rejects(explainOutput(['GET', '/x', '--claims', '{not json']), /--claims is not valid JSON/);
    await assert.rejects(explainOutput(['GET', '/x', '--issuer', 'nobody']), /--issuer nobody: not in identity\.issuers/);
  });
});
