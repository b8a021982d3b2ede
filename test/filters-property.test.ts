import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FHIR_R4_RESOURCE_TYPES, PATIENT_DATA_TYPES } from '../gateway/lib/fhir-types.ts';
import { PSY, consentDenyingAll, consentDenyingPsy, startFilterHarness, type FilterHarness } from './filters-harness.ts';

/**
 * Property tests of issue 12 class 1 over HTTP: arbitrary Bundles from a hostile upstream (missing or odd
 * resourceType, contained, include/outcome entries, nested Bundles and Parameters, references to other
 * patients in arbitrary nested fields and spellings, trimmed subjects) pass each filter; whatever comes
 * out references no patient but the allowed one and holds nothing the filter could not classify.
 */
const RUNS = 500;
const PATIENTS = ['p1', 'p2', 'p3'] as const;
const TYPES = ['Observation', 'Condition', 'Patient', 'Group', 'Provenance', 'Task', 'Appointment', 'Person', 'Practitioner', 'Organization', 'OperationOutcome'];
const ODD_TYPES = [undefined, '', 'observation', 'Xyzzy', 'Observation ', 42, null];

const patient = fc.constantFrom(...PATIENTS);
const reference = fc.oneof(
  patient.map((p) => ({ reference: `Patient/${p}` })),
  patient.map((p) => ({ reference: `https://ehr.example/fhir/Patient/${p}` })),
  patient.map((p) => ({ reference: `Patient/${p}/_history/2` })),
  patient.map((p) => ({ reference: `urn:uuid:pat-${p}` })),
  fc.constant({ reference: 'urn:uuid:nowhere' }),
  fc.constant({ reference: 'Practitioner/pr-1' }),
  fc.constant({ type: 'Patient', identifier: { value: 'mrn-9' } }),
  fc.constant({ reference: '#c1' }),
);
/** A reference placed in some field, directly or nested the way real resources nest them. */
const placed = fc.tuple(fc.constantFrom('subject', 'patient', 'focus', 'for', 'owner', 'target', 'member', 'participant', 'extension', 'link'), fc.nat(2), reference).map(([field, shape, ref]) =>
  shape === 0 ? [field, ref] : shape === 1 ? [field, [ref]] : [field, [{ entity: ref, actor: ref, valueReference: ref, target: ref }]],
);

type Json = Record<string, unknown>;
const resource = (depth: number): fc.Arbitrary<unknown> => {
  const leaf = fc
    .record({
      resourceType: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: fc.constantFrom(...ODD_TYPES) }),
      id: fc.constantFrom('p1', 'p2', 'p3', 'x1', 'c1'),
      refs: fc.array(placed, { maxLength: 3 }),
      psy: fc.boolean(),
      diagnostics: fc.constantFrom('fine', 'Patient/p2 is restricted', 'see https://ehr/fhir/Patient/p3'),
      contained: depth > 0 ? fc.option(fc.array(resource(depth - 1), { maxLength: 2 }), { nil: undefined }) : fc.constant(undefined),
    })
    .map(({ resourceType, id, refs, psy, diagnostics, contained }) => {
      const r: Json = { ...(resourceType === undefined ? {} : { resourceType }), id, ...Object.fromEntries(refs) };
      if (psy && (resourceType === 'Observation' || resourceType === 'Condition')) r.meta = { security: [PSY] };
      if (resourceType === 'OperationOutcome') r.issue = [{ severity: 'warning', code: 'processing', diagnostics }];
      if (contained) r.contained = contained;
      return r;
    });
  if (depth === 0) return leaf;
  return fc.oneof({ weight: 5, arbitrary: leaf }, { weight: 1, arbitrary: bundle(depth - 1) }, { weight: 1, arbitrary: parameters(depth - 1) });
};
const entry = (depth: number) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.tuple(resource(depth), fc.constantFrom('match', 'include', 'outcome')).map(([r, mode]) => ({ ...((r as Json)?.resourceType === 'Patient' ? { fullUrl: `urn:uuid:pat-${(r as Json).id}` } : {}), resource: r, search: { mode } })) },
    { weight: 1, arbitrary: fc.constantFrom({ fullUrl: 'urn:uuid:lonely' }, { search: { mode: 'include' } }, 'junk', null, 7) },
  );
const bundle = (depth: number): fc.Arbitrary<Json> => fc.array(entry(depth), { maxLength: 6 }).map((e) => ({ resourceType: 'Bundle', type: 'searchset', total: e.length, entry: e }));
const parameters = (depth: number): fc.Arbitrary<Json> =>
  fc.array(resource(depth), { maxLength: 3 }).map((rs) => ({ resourceType: 'Parameters', parameter: rs.map((r, i) => (i % 2 ? { name: `p${i}`, resource: r } : { name: `p${i}`, part: [{ name: 'inner', resource: r }] })) }));
const body = fc.oneof({ weight: 4, arbitrary: bundle(2) }, { weight: 1, arbitrary: resource(2) });

// ---- oracles over what the gateway released ----

interface Found {
  resource: Json;
  contained: boolean;
}
/** Every resource position of a released body: the body, entries, parameters (and parts), contained. */
function resourcesOf(v: unknown, out: Found[] = [], contained = false): Found[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    out.push({ resource: { resourceType: `(not an object: ${JSON.stringify(v)})` }, contained });
    return out;
  }
  const r = v as Json;
  out.push({ resource: r, contained });
  for (const c of (r.contained as unknown[]) ?? []) resourcesOf(c, out, true);
  if (r.resourceType === 'Bundle') for (const e of (r.entry as Json[]) ?? []) resourcesOf(e && typeof e === 'object' ? e.resource : e, out);
  const params = (list: unknown): void => {
    for (const p of (list as Json[]) ?? []) {
      if (p.resource !== undefined) resourcesOf(p.resource, out);
      params(p.part);
    }
  };
  if (r.resourceType === 'Parameters') params(r.parameter);
  return out;
}
/** Reference-shaped objects of one resource, its contained ones excluded (they are judged apart). */
function referencesOf(v: unknown, out: Json[] = [], top = true): Json[] {
  if (Array.isArray(v)) v.forEach((x) => referencesOf(x, out, false));
  else if (v && typeof v === 'object') {
    const o = v as Json;
    if (typeof o.reference === 'string' || o.type === 'Patient') out.push(o);
    for (const [k, x] of Object.entries(o)) if (!(top && k === 'contained')) referencesOf(x, out, false);
  }
  return out;
}
const FOREIGN = /Patient\/p[23]|pat-p[23]|nowhere/;

function assertClassifiable(released: unknown) {
  for (const { resource } of resourcesOf(released)) assert.ok(FHIR_R4_RESOURCE_TYPES.has(resource.resourceType as string), `unclassifiable released: ${JSON.stringify(resource).slice(0, 200)}`);
}
function assertOnlyPatientP1(released: unknown) {
  for (const { resource } of resourcesOf(released)) {
    if (resource.resourceType === 'Patient') assert.equal(resource.id, 'p1', 'a Patient other than p1 released');
    if (resource.resourceType === 'OperationOutcome') assert.ok(!/Patient\//.test(JSON.stringify(resource)), 'OperationOutcome naming a patient released');
    for (const ref of referencesOf(resource)) {
      assert.ok(typeof ref.reference === 'string', `identifier-only patient reference released: ${JSON.stringify(ref)}`);
      assert.ok(!FOREIGN.test(ref.reference as string), `reference to another patient released: ${ref.reference}`);
    }
  }
}

describe('response filters on arbitrary Bundles (fast-check, 500 runs each)', () => {
  let h: FilterHarness;
  before(async () => {
    h = await startFilterHarness();
    h.consentPages.set('p1', [[consentDenyingPsy('p1')]]);
    h.consentPages.set('p2', [[consentDenyingAll('p2')]]);
  });
  after(async () => {
    await h.close();
  });

  const run = async (path: string, token: string, check: (released: unknown) => void, refusals: number[]) => {
    let released = 0;
    await fc.assert(
      fc.asyncProperty(body, async (b) => {
        h.serve.set('/Observation', b);
        const r = await h.get(path, token);
        if (r.status !== 200) {
          assert.ok(refusals.includes(r.status), `status ${r.status}: ${r.text.slice(0, 300)}`);
          return;
        }
        released++;
        assertClassifiable(r.body);
        check(r.body);
      }),
      { numRuns: RUNS },
    );
    assert.ok(released > RUNS / 2, `most bodies are released in part (${released})`);
  };

  test('patient-compartment: nothing references a patient but p1, nothing unclassifiable', { timeout: 120_000 }, async () => {
    await run('/pc/Observation', h.tokens.p1, assertOnlyPatientP1, [404]);
  });

  test('consent (opt-in): only p1 data without PSY labels, nothing unattributable or unclassifiable', { timeout: 120_000 }, async () => {
    await run(
      '/optin/Observation',
      h.tokens.clinician,
      (released) => {
        assertOnlyPatientP1(released);
        assert.ok(!JSON.stringify(released).includes(PSY.code), 'a PSY-labelled resource of p1 released');
        for (const { resource, contained } of resourcesOf(released)) {
          if (contained || !PATIENT_DATA_TYPES.has(resource.resourceType as string) || resource.resourceType === 'Patient') continue;
          assert.ok(referencesOf(resource).length > 0, `patient data without a patient released: ${JSON.stringify(resource).slice(0, 200)}`);
        }
      },
      [403],
    );
  });

  test('minimize: only released types and fields, nothing unclassifiable', { timeout: 120_000 }, async () => {
    const fields: Record<string, string[]> = { Bundle: ['resourceType', 'type', 'total', 'link', 'entry'], Observation: ['resourceType', 'id', 'meta', 'status', 'code', 'subject', 'contained'], Patient: ['resourceType', 'id', 'name'], Practitioner: ['resourceType', 'id', 'name'], OperationOutcome: ['resourceType', 'issue'] };
    await run(
      '/min/Observation',
      h.tokens.clinician,
      (released) => {
        for (const { resource } of resourcesOf(released)) {
          const allowed = fields[resource.resourceType as string];
          assert.ok(allowed, `type not in the profile released: ${resource.resourceType}`);
          for (const k of Object.keys(resource)) assert.ok(allowed.includes(k), `${resource.resourceType}.${k} released`);
          if (resource.resourceType === 'OperationOutcome') assert.ok(!/Patient\//.test(JSON.stringify(resource)));
        }
      },
      [403],
    );
  });
});
