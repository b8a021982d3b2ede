import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { problem, startSandboxGateway, type SandboxGateway } from './helpers.ts';

/**
 * Query parameter pollution against the patient compartment: a token bound to patient p1 tries to read
 * patient p2 through repeated, listed, aliased or oddly spelled search parameters. Either the gateway
 * refuses (403/400, the EHR not asked), or the EHR is asked for p1 only and the answer holds p1's data only.
 */

interface SearchBundle {
  link?: Array<{ relation: string; url: string }>;
  entry?: Array<{ resource: { resourceType: string; subject?: { reference?: string } } }>;
}

describe('hostile query parameters: a patient token never reads another patient', () => {
  let sg: SandboxGateway;
  let p1: string;
  const ehrCalls = () => sg.sb.upstreams.ehr.stats().total;

  before(async () => {
    sg = await startSandboxGateway(
      () => `
server: { publicBaseUrl: "https://gw.example" }   # the self link names what the EHR was asked, rewritten to the gateway
routes:
  - id: observation-search
    layer: system
    match: { methods: [GET], path: /system/ehr/Observation }
    fhir: { resourceType: Observation, interaction: search }
    target: { upstream: ehr, path: /Observation }
    policies:
      - jwt: { issuers: [sandbox-idp] }
      - scopes: { smart: true }
      - patient-compartment: {}
`,
    );
    p1 = await sg.token({ clientId: 'portal-app', patient: 'p1', scopes: ['patient/*.rs'] });
  });
  after(() => sg.close());

  const refusedQueries = [
    'patient=p1&patient=p2',
    'patient=p2&patient=p1',
    'patient=p1,p2',
    'patient=p1%2Cp2',
    'patient=p1\\,p2',
    'patient=p2',
    'patient=Patient/p2',
    'patient=',
    'subject=Patient/p2',
    'subject=p1&subject=p2',
    'patient=p1&subject=Patient/p2',
    'patient=p1&beneficiary=p2',
    'patient=p1&patient=p1',
    'patient=p1&_format=xml',
    'patient=p1&_format=application/fhir%2Bxml',
  ];
  for (const q of refusedQueries) {
    test(`refused before the EHR: ?${q}`, async () => {
      const before = ehrCalls();
      const res = await sg.call(`/system/ehr/Observation?${q}`, p1);
      assert.ok(res.status === 403 || res.status === 400, `${res.status}`);
      const body = JSON.stringify(await problem(res));
      assert.ok(!body.includes('p2'), 'the other patient is not named in the answer');
      assert.equal(ehrCalls(), before);
    });
  }

  const narrowedQueries = ['', 'patient=p1', 'patient=Patient/p1', 'subject=Patient/p1', 'PATIENT=p2', 'Patient=p2', 'subject:Patient=p2', 'patient.name=x', 'patient%3Dp2=1', 'patient =p2', '_id=obs-p2-phq9', 'code=44249-1'];
  for (const q of narrowedQueries) {
    test(`asks the EHR for p1 only and returns p1 only: ?${q}`, async () => {
      const res = await sg.call(`/system/ehr/Observation?${q}`, p1);
      assert.equal(res.status, 200);
      const bundle = (await res.json()) as SearchBundle;
      const self = new URL(bundle.link?.find((l) => l.relation === 'self')?.url ?? 'http://x/');
      const asked = [...self.searchParams.getAll('patient'), ...self.searchParams.getAll('subject')];
      assert.ok(asked.length >= 1 && asked.every((v) => /^(Patient\/)?p1$/.test(v)), `the EHR was asked ${self.search}`);
      for (const e of bundle.entry ?? []) assert.equal(e.resource.subject?.reference, 'Patient/p1');
    });
  }
});
