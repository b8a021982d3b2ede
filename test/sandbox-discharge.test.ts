import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { ackCode, sendMllp } from '../gateway/legacy/hl7/client.ts';
import { startLegacy } from '../gateway/legacy/runtime.ts';
import type { LegacyConfig } from '../gateway/legacy/schema.ts';
import type { AuditConfig } from '../gateway/audit/schema.ts';
import { sampleAdt } from '../gateway/sandbox/adt.ts';
import { newSecret, signedHeaders } from './events-helpers.ts';
import { captureLogger, waitFor } from './helpers.ts';
import { startShippedSandbox } from './shipped-sandbox.ts';

test('the sandbox story on the shipped routes.yaml: an ADT A03 over MLLP books the discharge charge in billing, once', { timeout: 60_000 }, async () => {
  const { sb, gw } = await startShippedSandbox();
  const config = gw.gw.compiled.config as unknown as { legacy: LegacyConfig; audit: AuditConfig };
  // The shipped listener's port (2575) may be taken by a running sandbox: the same listener on port 0.
  const legacy = await startLegacy({
    config: { legacy: { ...config.legacy, mllp: config.legacy.mllp.map((l) => ({ ...l, port: 0 })) }, audit: config.audit },
    configDir: dirname(gw.gw.compiled.file),
    store: gw.gw.store,
    audit: gw.gw.audit,
    logger: captureLogger().logger,
    publisher: gw.gw.events,
  });
  const charges = async () => ((await (await fetch(`${sb.urls.billing}/charges?encounter=Encounter/e-p2-1`)).json()) as { data: Array<{ code: string; patient: string }> }).data;
  try {
    assert.deepEqual(await charges(), []);
    const [ack] = await sendMllp([sampleAdt('A03', { encounter: 'e-p2-1', controlId: 'STORY-1' })], { host: '127.0.0.1', port: legacy.listeners[0].port, timeoutMs: 5000 });
    assert.equal(ackCode(ack).code, 'AA');
    await waitFor(async () => (await charges()).length > 0, 10_000, 'discharge charge');
    assert.deepEqual((await charges()).map((c) => [c.code, c.patient]), [['99238', 'Patient/p2']]);

    // Delivered again (an operator's resend): billing books per event id, so still one charge.
    const delivered = async () => (await gw.gw.events!.metrics.delivered.get()).values.reduce((n, v) => n + v.value, 0);
    assert.equal(await gw.gw.events!.resend('discharge-billing', 1), 1);
    await waitFor(async () => (await delivered()) >= 2, 10_000, 'resent delivery');
    assert.equal((await charges()).length, 1);

    // A webhook signed with another secret is refused and books nothing.
    const body = JSON.stringify({ id: 'forged-1', type: 'encounter.discharged', patient: 'p2', data: { encounter: { id: 'e-p2-1' } } });
    const forged = await fetch(`${sb.urls.billing}/events/encounters`, { method: 'POST', headers: signedHeaders(newSecret(), 'forged-1', body), body });
    assert.equal(forged.status, 401);
    assert.equal((await charges()).length, 1);
  } finally {
    await legacy.close();
    await gw.close();
    await sb.close();
  }
});
