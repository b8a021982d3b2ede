import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ackCode, sendMllp } from '../gateway/legacy/hl7/client.ts';
import { startLegacy, type LegacyRuntime } from '../gateway/legacy/runtime.ts';
import type { Received, Sandbox } from '../gateway/sandbox/index.ts';
import { sampleAdt } from '../gateway/sandbox/adt.ts';
import { captureLogger, waitFor, type TestGateway } from './helpers.ts';
import { startShippedSandbox } from './shipped-sandbox.ts';

/**
 * The README's "Events in the sandbox" story on the shipped routes.yaml: an ADT A03 discharge over a real
 * MLLP socket → the event backbone → the charge-capture service posts the charge through the process API
 * (billing + ERP), the CRM gets a minimized signed notification, the portal's FHIR subscription only its
 * own patient's events, a CRM that is down gets its events once it is back.
 */
describe('sandbox story: discharge → charge, CRM, portal', () => {
  let sb: Sandbox;
  let gw: TestGateway;
  let legacy: LegacyRuntime;

  before(async () => {
    ({ sb, gw } = await startShippedSandbox());
    const c = gw.gw.compiled.config;
    legacy = await startLegacy({ config: c, configDir: dirname(gw.gw.compiled.file), store: gw.gw.store, audit: gw.gw.audit, logger: captureLogger().logger, publisher: gw.gw.events });
  });
  after(async () => {
    await legacy?.close();
    await gw?.close();
    await sb?.close();
  });

  const discharge = async (encounter: string) => {
    const [ack] = await sendMllp([sampleAdt('A03', { encounter })], { host: '127.0.0.1', port: legacy.listeners[0].port, timeoutMs: 10_000 });
    assert.equal(ackCode(ack).code, 'AA');
  };
  const box = (name: string) => sb.receivers.received(name);
  const eventsAbout = (rows: Received[], encounter: string) => rows.filter((r) => (r.body as { subject?: string }).subject === `Encounter/${encounter}`);

  it('a discharge posts the charge through the process API, once, and the CRM gets only the minimized notice', async () => {
    await discharge('e-p1-2');
    await waitFor(() => eventsAbout(box('charge-capture'), 'e-p1-2').length > 0, 20_000, 'the charge-capture delivery');
    const [capture] = eventsAbout(box('charge-capture'), 'e-p1-2');
    const charged = (capture.body as { charged: { charge: { id: string; encounter: string; patient: string }; posting: { reference?: string } } }).charged;
    assert.equal(charged.charge.encounter, 'Encounter/e-p1-2');
    assert.equal(charged.charge.patient, 'Patient/p1');
    // The billing system holds exactly one discharge charge for the encounter (the event id was the Idempotency-Key).
    const charges = (await (await fetch(`${sb.urls.billing}/charges?encounter=e-p1-2`)).json()) as { data: Array<{ code: string }> };
    assert.equal(charges.data.filter((c) => c.code === '99238').length, 1);

    await waitFor(() => eventsAbout(box('crm'), 'e-p1-2').length > 0, 20_000, 'the CRM delivery');
    const [crm] = eventsAbout(box('crm'), 'e-p1-2');
    const data = (crm.body as { data: { patient: Record<string, unknown>; encounter: Record<string, unknown> } }).data;
    // crm-notice: the patient's id only; of the encounter id, status, period, serviceProvider.
    assert.deepEqual(Object.keys(data.patient).sort(), ['id', 'resourceType']);
    assert.ok(Object.keys(data.encounter).every((k) => ['resourceType', 'id', 'status', 'period', 'serviceProvider', 'meta'].includes(k)), Object.keys(data.encounter).join());
    assert.equal(JSON.stringify(crm.body).includes('Testerly'), false, 'no name reaches the CRM');
  });

  it("the portal's FHIR subscription gets p1's discharge and never p2's", async () => {
    await discharge('e-p2-1');
    await discharge('e-p1-1');
    await waitFor(() => eventsAbout(box('crm'), 'e-p1-1').length > 0 && eventsAbout(box('crm'), 'e-p2-1').length > 0, 20_000, 'both CRM deliveries');
    await waitFor(() => box('portal-p1').length >= 2, 20_000, "the portal's notifications of e-p1-2 and e-p1-1");
    const portal = box('portal-p1');
    for (const r of portal) {
      const bundle = r.body as { resourceType: string; type: string; entry: Array<{ resource: { resourceType: string; parameter?: Array<{ name: string }> } }> };
      assert.equal(bundle.resourceType, 'Bundle');
      assert.equal(bundle.type, 'history');
      assert.equal(bundle.entry[0].resource.resourceType, 'Parameters');
    }
    // Nothing about p2 in anything the portal received.
    assert.equal(JSON.stringify(portal).includes('p2'), false);
  });

  it('a CRM that is down gets its events after it comes back', async () => {
    sb.receivers.setFault({ path: '/hooks/crm', status: 503 });
    await discharge('e-p3-1');
    // Delivered to the others while the CRM refuses every attempt.
    await waitFor(() => eventsAbout(box('charge-capture'), 'e-p3-1').length > 0, 20_000, 'the charge-capture delivery');
    assert.equal(eventsAbout(box('crm'), 'e-p3-1').length, 0);
    sb.receivers.clearFaults();
    await waitFor(() => eventsAbout(box('crm'), 'e-p3-1').length > 0, 30_000, 'the CRM delivery after it came back');
  });
});
