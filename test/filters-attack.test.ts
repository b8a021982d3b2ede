import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PSY, consentDenyingPsy, consentPermitting, searchset, startFilterHarness, type FilterHarness } from './filters-harness.ts';

/** Attack tests of issue 12 classes 1–2: response filters must remove what they cannot judge or attribute. */

const SECRET = 'Bob Secretname';
const p2Patient = { resourceType: 'Patient', id: 'p2', name: [{ text: SECRET }] };
const p1Patient = { resourceType: 'Patient', id: 'p1', name: [{ text: 'Alice Own' }] };
const match = (resource: unknown, extra: Record<string, unknown> = {}) => ({ resource, search: { mode: 'match' }, ...extra });
const include = (resource: unknown, extra: Record<string, unknown> = {}) => ({ resource, search: { mode: 'include' }, ...extra });
const obs = (id: string, subject: unknown, extra: Record<string, unknown> = {}) => ({ resourceType: 'Observation', id, status: 'final', code: { text: 'x' }, ...(subject === undefined ? {} : { subject }), ...extra });
const psyObs = (id: string, subject: unknown) => obs(id, subject, { meta: { security: [PSY] }, code: { text: 'depression screening' } });
const ids = (b: any): string[] => (b?.entry ?? []).map((e: any) => e.resource?.id).sort();

describe('response filters fail closed (issue 12, classes 1 and 2)', () => {
  let h: FilterHarness;
  before(async () => {
    h = await startFilterHarness();
  });
  after(async () => {
    await h.close();
  });

  describe('patient-compartment: _revinclude and any other reference to another patient', () => {
    const revinclude = (other: unknown) => searchset([match(p1Patient), include(other)]);
    const variants: Array<[string, unknown]> = [
      ['Group.member.entity', { resourceType: 'Group', id: 'g1', type: 'person', actual: true, member: [{ entity: { reference: 'Patient/p1' } }, { entity: { reference: 'Patient/p2', display: SECRET } }] }],
      ['Provenance.target', { resourceType: 'Provenance', id: 'prov', target: [{ reference: 'Patient/p1' }, { reference: 'Patient/p2', display: SECRET }], recorded: '2024-01-01T00:00:00Z', agent: [] }],
      ['Appointment.participant.actor', { resourceType: 'Appointment', id: 'ap', status: 'booked', participant: [{ actor: { reference: 'Patient/p1' } }, { actor: { reference: 'Patient/p2', display: SECRET } }] }],
      ['Person.link.target', { resourceType: 'Person', id: 'pe', name: [{ text: SECRET }], link: [{ target: { reference: 'Patient/p2' } }] }],
      ['Task.for / owner', { resourceType: 'Task', id: 't', status: 'ready', intent: 'order', for: { reference: 'Patient/p1' }, owner: { reference: 'Patient/p2', display: SECRET } }],
      ['absolute reference', { resourceType: 'Group', id: 'g2', member: [{ entity: { reference: 'https://ehr.example/fhir/Patient/p2', display: SECRET } }] }],
      ['versioned reference', { resourceType: 'Group', id: 'g3', member: [{ entity: { reference: 'Patient/p2/_history/4', display: SECRET } }] }],
      ['extension valueReference', obs('o-ext', { reference: 'Patient/p1' }, { extension: [{ url: 'x', valueReference: { reference: 'Patient/p2', display: SECRET } }] })],
      ['identifier-only patient reference', { resourceType: 'Group', id: 'g4', member: [{ entity: { type: 'Patient', identifier: { value: 'mrn-2' }, display: SECRET } }] }],
    ];
    for (const [name, other] of variants) {
      test(`_revinclude=Group:member style leak via ${name} is removed`, async () => {
        h.serve.set('/Patient', revinclude(other));
        const r = await h.get('/pc/Patient?_revinclude=Group:member', h.tokens.p1);
        assert.equal(r.status, 200);
        assert.deepEqual(ids(r.body), ['p1']);
        assert.ok(!r.text.includes(SECRET) && !r.text.includes('p2'), r.text);
      });
    }

    // Found by filters-property (fast-check): a FHIR answer that is not a resource was taken for a plain-JSON
    // record of the route's type and released when it pointed at p1.
    const notResources: Array<[string, unknown]> = [
      ['a record without resourceType naming p1 (absolute)', { id: 'p1', subject: { reference: 'https://ehr.example/fhir/Patient/p1' } }],
      ['a record without resourceType naming p1', { id: 'o1', subject: { reference: 'Patient/p1' }, note: SECRET }],
      ['a bare list of records', [{ id: 'o1', subject: { reference: 'Patient/p1' }, note: SECRET }]],
      ['a plain {data: [...]} wrapper', { data: [{ id: 'o1', subject: { reference: 'Patient/p1' }, note: SECRET }], total: 1 }],
      ['a bare string', 'Patient/p1'],
    ];
    for (const [name, body] of notResources) {
      test(`an application/fhir+json answer that is not a resource is refused: ${name}`, async () => {
        h.serve.set('/Observation', body);
        const r = await h.get('/pc/Observation', h.tokens.p1);
        assert.equal(r.status, 404, r.text);
        assert.ok(!r.text.includes(SECRET), r.text);
      });
    }

    test('urn:uuid references resolve through fullUrl: to p2 removed, to p1 kept, unresolvable removed', async () => {
      h.serve.set(
        '/Observation',
        searchset([
          { fullUrl: 'urn:uuid:aaa', resource: p2Patient, search: { mode: 'include' } },
          { fullUrl: 'urn:uuid:bbb', resource: p1Patient, search: { mode: 'include' } },
          match(obs('via-urn-p2', { reference: 'urn:uuid:aaa' })),
          match(obs('via-urn-p1', { reference: 'urn:uuid:bbb' })),
          match(obs('via-urn-nowhere', { reference: 'urn:uuid:ccc' })),
        ]),
      );
      const r = await h.get('/pc/Observation', h.tokens.p1);
      assert.equal(r.status, 200);
      assert.deepEqual(ids(r.body), ['p1', 'via-urn-p1']);
    });

    test('a single read of a resource naming another patient anywhere is refused 404-style', async () => {
      for (const body of [
        obs('x', { reference: 'Patient/p1' }, { focus: [{ reference: 'Patient/p2' }] }),
        obs('x', { reference: 'Patient/p1' }, { performer: [{ reference: 'https://ehr.example/fhir/Patient/p2/_history/1' }] }),
        obs('x', { reference: 'urn:uuid:unknown' }),
        { resourceType: 'observation', id: 'x', subject: { reference: 'Patient/p1' } },
      ]) {
        h.serve.set('/Observation/x', body);
        const r = await h.get('/pc/Observation/x', h.tokens.p1);
        assert.equal(r.status, 404, JSON.stringify(body));
        assert.ok(!r.text.includes('p2'));
      }
      h.serve.set('/Patient/p1', { ...p1Patient, id: 'p2' });
      assert.equal((await h.get('/pc/Patient/p1', h.tokens.p1)).status, 404, 'a Patient with another id is not the caller');
    });

    test('contained resources of another patient are removed, the own parent stays', async () => {
      h.serve.set(
        '/Observation',
        searchset([
          match(obs('with-contained', { reference: 'Patient/p1' }, { contained: [p2Patient, { resourceType: 'Practitioner', id: 'pr' }, { id: 'no-type', name: SECRET }] })),
          match(obs('contained-not-list', { reference: 'Patient/p1' }, { contained: { resourceType: 'Patient', id: 'p2' } })),
        ]),
      );
      const r = await h.get('/pc/Observation', h.tokens.p1);
      assert.deepEqual(ids(r.body), ['with-contained']);
      assert.deepEqual(r.body.entry[0].resource.contained.map((c: any) => c.id), ['pr']);
      assert.ok(!r.text.includes(SECRET));
    });

    test('nested Bundles and Parameters are walked to any depth', async () => {
      const inner = searchset([match(obs('inner-own', { reference: 'Patient/p1' })), match(obs('inner-theirs', { reference: 'Patient/p2' })), match(p2Patient)]);
      const params = { resourceType: 'Parameters', parameter: [{ name: 'a', resource: p2Patient }, { name: 'b', part: [{ name: 'c', resource: obs('deep-theirs', { reference: 'Patient/p2' }) }] }, { name: 'd', resource: obs('deep-own', { reference: 'Patient/p1' }) }] };
      h.serve.set('/Observation', searchset([match(obs('top-own', { reference: 'Patient/p1' })), match({ ...inner, id: 'inner' }), match(searchset([match({ ...inner, id: 'innermost' })])), match(params)]));
      const r = await h.get('/pc/Observation', h.tokens.p1);
      assert.equal(r.status, 200);
      assert.ok(!r.text.includes(SECRET) && !r.text.includes('Patient/p2') && !r.text.includes('theirs'), r.text);
      assert.ok(r.text.includes('inner-own') && r.text.includes('deep-own'));
    });

    test('entries that cannot be classified are removed: no resourceType, odd resourceType, non-object, fullUrl/search only', async () => {
      h.serve.set(
        '/Observation',
        searchset([
          match(obs('ok', { reference: 'Patient/p1' })),
          match({ id: 'no-type', subject: { reference: 'Patient/p2' }, name: SECRET }),
          match({ resourceType: 'Observaton', id: 'typo', subject: { reference: 'Patient/p2' } }),
          match({ resourceType: 42, id: 'number' }),
          match('a string'),
          { fullUrl: 'http://ehr/Patient/p2' },
          { search: { mode: 'include' } },
          'not an entry',
        ]),
      );
      const r = await h.get('/pc/Observation', h.tokens.p1);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.entry, [match(obs('ok', { reference: 'Patient/p1' }))]);
    });

    test('an OperationOutcome entry stays only when it names no patient', async () => {
      const oo = (diagnostics: string) => ({ resourceType: 'OperationOutcome', issue: [{ severity: 'warning', code: 'processing', diagnostics }] });
      h.serve.set('/Observation', searchset([match(obs('ok', { reference: 'Patient/p1' })), { resource: { ...oo('Too many matches'), id: 'oo-clean' }, search: { mode: 'outcome' } }, { resource: { ...oo(`Patient/p2 (${SECRET}) is restricted`), id: 'oo-p2' }, search: { mode: 'outcome' } }]));
      const r = await h.get('/pc/Observation', h.tokens.p1);
      assert.deepEqual(ids(r.body), ['ok', 'oo-clean']);
      assert.ok(!r.text.includes(SECRET));
    });
  });

  describe('consent: unattributable resources are withheld, every Consent page is read', () => {
    before(() => {
      h.consentPages.clear();
      h.consentPages.set('p2', [[consentDenyingPsy('p2')]]);
      h.consentPages.set('p1', [[consentPermitting('p1')]]);
    });

    test('baseline: the PSY Observation of p2 is removed when its subject is there', async () => {
      h.serve.set('/Observation', searchset([match(psyObs('psy', { reference: 'Patient/p2' })), match(obs('plain', { reference: 'Patient/p2' }))]));
      const r = await h.get('/cs/Observation?patient=p2', h.tokens.clinician);
      assert.deepEqual(ids(r.body), ['plain']);
    });

    const trimmed: Array<[string, string, unknown]> = [
      ['_elements=code hides subject', '_elements=code,meta', psyObs('psy', undefined)],
      ['_summary=true hides subject', '_summary=true', psyObs('psy', undefined)],
      ['subject identifier only', '_elements=code,meta,subject', psyObs('psy', { type: 'Patient', identifier: { value: 'mrn-2' } })],
      ['subject as an unresolvable urn:uuid', '', psyObs('psy', { reference: 'urn:uuid:nowhere' })],
      ['subject not a valid reference', '', psyObs('psy', { reference: 'Patient/p2?x=1' })],
    ];
    for (const [name, query, body] of trimmed) {
      test(`${name}: the PSY Observation is withheld (withoutConsent: permit notwithstanding)`, async () => {
        h.serve.set('/Observation', searchset([match(body), match(obs('other', { reference: 'Patient/p1' }))]));
        const r = await h.get(`/cs/Observation?${query}`, h.tokens.clinician);
        assert.equal(r.status, 200);
        assert.deepEqual(ids(r.body), ['other']);
        assert.ok(!r.text.includes('depression'));
      });
    }

    test('a single unattributable resource is refused with a problem document', async () => {
      h.serve.set('/Observation/psy', psyObs('psy', undefined));
      const r = await h.get('/cs/Observation/psy?_elements=code,meta', h.tokens.clinician);
      assert.equal(r.status, 403);
      assert.match(String(r.body?.type), /./);
      assert.ok(!r.text.includes('depression'));
    });

    test('resources that are no patient data (Practitioner) and contained parts of an attributed resource stay', async () => {
      h.serve.set('/Observation', searchset([match(obs('own', { reference: 'Patient/p1' }, { contained: [{ resourceType: 'Observation', id: 'part', status: 'final', code: { text: 'y' } }] })), include({ resourceType: 'Practitioner', id: 'pr' })]));
      const r = await h.get('/cs/Observation', h.tokens.clinician);
      assert.deepEqual(ids(r.body), ['own', 'pr']);
      assert.equal(r.body.entry[0].resource.contained.length, 1);
    });

    test('a PSY resource contained in p2\'s Observation is judged by p2\'s consent', async () => {
      h.serve.set('/Observation', searchset([match(obs('parent', { reference: 'Patient/p2' }, { contained: [{ ...psyObs('hidden', undefined), id: 'hidden' }] }))]));
      const r = await h.get('/cs/Observation', h.tokens.clinician);
      assert.deepEqual(ids(r.body), ['parent']);
      assert.deepEqual(r.body.entry[0].resource.contained, []);
    });

    test('nested Bundle and Parameters: PSY Observations of p2 deep inside are removed', async () => {
      const inner = searchset([match(psyObs('psy-inner', { reference: 'Patient/p2' })), match(obs('plain-inner', { reference: 'Patient/p2' }))]);
      const params = { resourceType: 'Parameters', id: 'params', parameter: [{ name: 'r', resource: psyObs('psy-param', { reference: 'Patient/p2' }) }, { name: 'n', part: [{ name: 'deep', resource: { ...inner, id: 'deep' } }] }] };
      h.serve.set('/Observation', searchset([match({ ...inner, id: 'inner' }), match(params)]));
      const r = await h.get('/cs/Observation', h.tokens.clinician);
      assert.equal(r.status, 200);
      assert.ok(!r.text.includes('depression') && !r.text.includes('psy-'), r.text);
      assert.ok(r.text.includes('plain-inner'));
    });

    const paged: Array<[string, unknown[][]]> = [
      ['deny on page 2', [[consentPermitting('p2', 'a')], [consentDenyingPsy('p2')]]],
      ['deny on page 3', [[consentPermitting('p2', 'a')], [consentPermitting('p2', 'b')], [consentDenyingPsy('p2')]]],
      ['empty page 1, deny on page 2', [[], [consentDenyingPsy('p2')]]],
    ];
    for (const [name, pages] of paged) {
      test(`Consent search pages: ${name} still denies`, async () => {
        h.consentPages.set('p2', pages);
        h.serve.set('/Observation', searchset([match(psyObs('psy', { reference: 'Patient/p2' })), match(obs('plain', { reference: 'Patient/p2' }))]));
        const r = await h.get('/cs/Observation?patient=p2', h.tokens.clinician);
        assert.equal(r.status, 200);
        assert.deepEqual(ids(r.body), ['plain']);
        h.consentPages.set('p2', [[consentDenyingPsy('p2')]]);
      });
    }

    test('more Consent pages than the gateway reads (21) → 502, nothing released', async () => {
      h.consentPages.set('p2', Array.from({ length: 21 }, (_, i) => [consentPermitting('p2', `c${i}`)]));
      h.serve.set('/Observation', searchset([match(obs('plain', { reference: 'Patient/p2' }))]));
      const r = await h.get('/cs/Observation', h.tokens.clinician);
      assert.equal(r.status, 502);
      assert.ok(!r.text.includes('plain'));
      h.consentPages.set('p2', [[consentDenyingPsy('p2')]]);
    });

    test('a next link the gateway will not follow (other path, other patient) → 502; another host is never contacted', async () => {
      for (const link of ['http://127.0.0.1:9/elsewhere?patient=p2&_page=2', '/Consent?patient=p1&_page=2', '/Consent?patient=p2&patient=p1&_page=2']) {
        h.consentPages.set('p2', [[consentPermitting('p2')], [consentDenyingPsy('p2')]]);
        h.nextLink = () => link;
        h.serve.set('/Observation', searchset([match(obs('plain', { reference: 'Patient/p2' }))]));
        const r = await h.get('/cs/Observation', h.tokens.clinician);
        assert.equal(r.status, 502, link);
      }
      h.nextLink = () => undefined;
      h.consentPages.set('p2', [[consentDenyingPsy('p2')]]);
    });
  });

  describe('minimize: only what it can classify and release', () => {
    test('unclassifiable entries, unreleased types and nested unknowns are removed', async () => {
      h.serve.set(
        '/Observation',
        searchset([
          match(obs('ok', { reference: 'Patient/p1' }, { contained: [{ resourceType: 'Patient', id: 'c', name: [{ text: 'n' }], birthDate: '1970' }, { id: 'untyped', name: SECRET }] })),
          match({ id: 'no-type', name: SECRET }),
          match({ resourceType: 'Nonsense', name: SECRET }),
          { fullUrl: 'http://ehr/x' },
          match(searchset([match(obs('nested-ok', { reference: 'Patient/p1' })), match({ name: SECRET })])),
          match({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'x', diagnostics: `Patient/p2 ${SECRET}` }] }),
        ]),
      );
      const r = await h.get('/min/Observation', h.tokens.clinician);
      assert.equal(r.status, 200);
      assert.ok(!r.text.includes(SECRET) && !r.text.includes('birthDate'), r.text);
      assert.ok(r.text.includes('nested-ok'));
      assert.deepEqual(r.body.entry.map((e: any) => e.resource.resourceType), ['Observation', 'Bundle']);
    });
  });
});
