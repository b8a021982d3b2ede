import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, tempDir, waitFor } from './helpers.ts';
import { discharged, encounterEventsYaml, newSecret, startReceiver } from './events-helpers.ts';

const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';

/** p1 denies marketing (HMARKT) any use of their data; p2 has no consent on file (opt-out model: permit). */
const consents = [
  {
    resourceType: 'Consent',
    id: 'consent-p1-marketing',
    status: 'active',
    patient: { reference: 'Patient/p1' },
    provision: { type: 'permit', provision: [{ type: 'deny', purpose: [{ system: ACT_REASON, code: 'HMARKT' }] }] },
  },
];

test('per-subscriber policies: consent withholds from the CRM but not the patient; minimization differs per subscriber', async () => {
  const dir = tempDir('hcgw-events-pol-');
  const consentFile = join(dir, 'consents.json');
  writeFileSync(consentFile, JSON.stringify(consents));
  const secrets = { crm: newSecret(), portal: newSecret(), billing: newSecret() };
  const crm = await startReceiver(secrets.crm);
  const billing = await startReceiver(secrets.billing);
  const portal = await startReceiver(undefined);
  const gw = await startGateway(`
version: 1
minimization:
  profiles:
    crm-notice: { resources: { Encounter: [id, status] } }
    billing: { resources: { Encounter: [id, status, period, serviceProvider] } }
    patient-view: { resources: { Encounter: [id, status, subject, period, serviceProvider, reasonCode] } }
routes: []
${encounterEventsYaml(dir)}
    - id: crm
      filter: { types: [encounter.discharged] }
      subscriber: { clientId: crm-vendor, purposeOfUse: HMARKT }
      policies:
        - minimize: { select: [{ profile: crm-notice }] }
        - consent: { source: { file: "${consentFile}" } }
      delivery: { kind: webhook, url: "${crm.url}", secret: "${secrets.crm}" }
    - id: billing
      filter: { types: [encounter.discharged] }
      subscriber: { clientId: billing, purposeOfUse: HPAYMT }
      policies:
        - minimize: { select: [{ profile: billing }] }
        - consent: { source: { file: "${consentFile}" } }
      delivery: { kind: webhook, url: "${billing.url}", secret: "${secrets.billing}" }
    - id: portal-p1
      filter: { types: [encounter.discharged], patient: p1 }
      subscriber: { fhirUser: Patient/p1, patient: p1, purposeOfUse: PATRQT }
      fhir: { resourceType: Encounter }
      policies:
        - minimize: { select: [{ profile: patient-view }] }
        - patient-compartment: {}
        - consent: { source: { file: "${consentFile}" } }
      delivery: { kind: fhir-rest-hook, url: "${portal.url}", topic: "http://hospital.example/topic/encounter-discharge" }
`);
  try {
    const events = gw.gw.events!;
    const e1 = discharged('p1');
    const e2 = discharged('p2');
    await events.publish(e1);
    await events.publish(e2);
    await waitFor(() => billing.received.length === 2 && crm.received.length === 1 && portal.received.length === 1, 5000, 'deliveries');
    await events.drained();

    // CRM: p1's consent denies marketing, so only p2's event, and only id and status of it.
    assert.deepEqual(crm.received.map((m) => m.id), [e2.id]);
    assert.equal(crm.received[0].data.status, 'finished');
    for (const f of ['subject', 'period', 'serviceProvider', 'reasonCode']) assert.equal(crm.received[0].data[f], undefined, `crm must not get ${f}`);
    // Billing: both events (payment is not denied), its own fields.
    assert.deepEqual(billing.received.map((m) => m.id).sort(), [e1.id, e2.id].sort());
    for (const m of billing.received) {
      assert.ok(m.data.period && m.data.serviceProvider);
      assert.equal(m.data.subject, undefined);
      assert.equal(m.data.reasonCode, undefined);
    }
    // Patient portal: a FHIR R4 backport notification about p1 only, SubscriptionStatus first.
    const bundle = portal.received[0];
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'history');
    assert.equal(bundle.entry[0].resource.resourceType, 'Parameters');
    const params = Object.fromEntries(bundle.entry[0].resource.parameter.map((p: any) => [p.name, p]));
    assert.equal(params.topic.valueCanonical, 'http://hospital.example/topic/encounter-discharge');
    assert.equal(params.type.valueCode, 'event-notification');
    assert.equal(bundle.entry[1].resource.id, 'enc-p1');
    assert.deepEqual(bundle.entry[1].resource.subject, { reference: 'Patient/p1' });

    const metrics = await gw.gw.metrics.registry.metrics();
    assert.match(metrics, /hcgw_events_withheld_total\{subscription="crm",policy="consent"\} 1/);
  } finally {
    await gw.close();
    await Promise.all([crm.close(), billing.close(), portal.close()]);
  }
});
