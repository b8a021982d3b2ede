import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readEventLog } from '../gateway/legacy/event-log.ts';
import { ackCode, sendMllp } from '../gateway/legacy/hl7/client.ts';
import { startLegacy, type LegacyRuntime } from '../gateway/legacy/runtime.ts';
import type { LegacyConfig } from '../gateway/legacy/schema.ts';
import { PENDED_CODE, startPayer } from '../gateway/sandbox/payer.ts';
import type { UpstreamServer } from '../gateway/sandbox/http.ts';
import { sampleAdt, SANDBOX_FACILITY } from '../gateway/sandbox/adt.ts';
import type { Gateway } from '../gateway/http/server.ts';
import { newSecret, startReceiver, type Receiver } from './events-helpers.ts';
import { assertIssues, captureLogger, configIssues, createTestIssuer, startGateway, tempDir, waitFor, type TestGateway, type TestIssuer } from './helpers.ts';

const HASH_KEY = 'legacy-events-test-hash-key-0123456789abcdef';
const PAS = '/process/payer/Claim/$submit';

/** encounter.admitted is satisfiable; encounter.discharged demands a field no ADT mapping produces (refusal). */
const SCHEMAS = `
    encounter.admitted: { "1": { type: object, required: [patient, encounter], properties: { patient: { type: object }, encounter: { type: object, required: [resourceType], properties: { resourceType: { const: Encounter } } } } } }
    encounter.discharged: { "1": { type: object, required: [dischargeSummary], properties: { dischargeSummary: { type: string } } } }
    priorauth.decided: { "1": { type: object, required: [decision, decisionMs, claimResponse], properties: { decision: { enum: [approved, denied] }, decisionMs: { type: integer }, claimResponse: { type: object } } } }`;

function pasBundle(patient: string) {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [{ resource: { resourceType: 'Claim', status: 'active', use: 'preauthorization', type: { coding: [{ code: 'professional' }] }, patient: { reference: `Patient/${patient}` }, created: '2026-12-02', provider: { display: 'Sandbox Hospital' }, priority: { coding: [{ code: 'normal' }] }, insurance: [{ sequence: 1, focal: true, coverage: { display: 'M-ACTIVE-1' } }], item: [{ sequence: 1, productOrService: { coding: [{ system: 'http://www.ama-assn.org/go/cpt', code: PENDED_CODE }] } }] } }],
  };
}

/** Starts the MLLP listeners of a running gateway exactly as `hcgw start` does (the backbone handed in). */
function startListeners(gw: Gateway, logger = captureLogger().logger): Promise<LegacyRuntime> {
  const c = gw.compiled.config as { legacy?: LegacyConfig; audit?: Parameters<typeof startLegacy>[0]['config']['audit'] };
  return startLegacy({ config: { legacy: c.legacy, audit: c.audit }, configDir: dirname(gw.compiled.file), store: gw.store, audit: gw.audit, logger, publisher: gw.events });
}

describe('legacy adapters publish to the event backbone', () => {
  let gw: TestGateway;
  let legacy: LegacyRuntime;
  let receiver: Receiver;
  let payer: UpstreamServer;
  let issuer: TestIssuer;
  const secret = newSecret();

  before(async () => {
    receiver = await startReceiver(secret);
    payer = await startPayer({ port: 0, decisionDelayMs: 200 });
    issuer = await createTestIssuer('legacy-events-idp');
    const dir = tempDir('hcgw-legacy-events-');
    gw = await startGateway(`
version: 1
identity: { issuers: [${issuer.yaml}] }
upstreams: { payer: { url: ${payer.url} } }
audit: { hashKey: ${HASH_KEY}, flushIntervalMs: 0, sinks: [{ kind: file, path: ${join(dir, 'audit.log')} }] }
legacy:
  mllp:
    - { name: adt-in, port: 0, allowedFacilities: [${SANDBOX_FACILITY}], events: [A01, A03] }
events:
  engine: { kind: embedded, dir: "${join(dir, 'events')}" }
  schemas:${SCHEMAS}
  subscriptions:
    - id: bedboard
      filter: { types: [encounter.admitted, priorauth.decided] }
      delivery: { kind: webhook, url: "${receiver.url}", secret: "${secret}" }
      retry: { maxAttempts: 3, baseMs: 5, maxMs: 20 }
routes:
  - id: prior-auth
    layer: process
    match: { methods: [POST], path: ${PAS} }
    target: { adapter: pas, upstream: payer, path: /pas/Claim/$submit, statusPath: "/pas/ClaimResponse/:id", pollIntervalMs: 50 }
    policies:
      - audit: {}
      - jwt: { issuers: [legacy-events-idp] }
`);
    legacy = await startListeners(gw.gw);
  });
  after(async () => {
    await legacy?.close();
    await gw?.close();
    await receiver?.close();
    await payer?.close();
  });

  const send = (msg: string) => sendMllp([msg], { host: '127.0.0.1', port: legacy.listeners[0].port, timeoutMs: 5000 });

  it('an ADT A01 over a real MLLP socket: AA once the backbone stored it, then a signed webhook delivery', async () => {
    const [ack] = await send(sampleAdt('A01', { encounter: 'e-p7-1', controlId: 'BB-A01-1', patient: 'p7' }));
    assert.deepEqual(ackCode(ack), { code: 'AA', controlId: 'BB-A01-1', text: '' });
    // AA means durable: the backbone's log holds the event at the moment the ACK arrives.
    const stored = (await gw.gw.events!.log.read(1, 100)).find((s) => s.event.id === `adt-in:${SANDBOX_FACILITY}:BB-A01-1`);
    assert.ok(stored, 'event in the backbone log when AA arrived');
    assert.equal(stored.event.dataschema, 'urn:hcgw:schema:encounter.admitted:1');
    await waitFor(() => receiver.received.length >= 1, 5000, 'webhook delivery');
    assert.equal(receiver.rejected, 0, 'every delivery verified with standardwebhooks');
    const got = receiver.received.find((m) => m.id === stored.event.id)!;
    assert.equal(got.type, 'encounter.admitted');
    assert.equal(got.source, '/mllp/adt-in');
    assert.equal(got.patient, 'p7');
    assert.equal(got.data.encounter.resourceType, 'Encounter');
  });

  it('an event the backbone refuses (schema) is answered AR, dead-lettered with its reason, and never delivered', async () => {
    const before = receiver.received.length;
    const [ack] = await send(sampleAdt('A03', { encounter: 'e-p7-1', controlId: 'BB-A03-1', patient: 'p7' }));
    assert.deepEqual(ackCode(ack), { code: 'AR', controlId: 'BB-A03-1', text: 'event refused (schema-invalid)' });
    const dl = (await gw.gw.events!.deadLetters()).find((d) => d.id === `schema:adt-in:${SANDBOX_FACILITY}:BB-A03-1`);
    assert.equal(dl?.reason, 'schema-invalid');
    assert.equal((await gw.gw.events!.log.read(1, 100)).filter((s) => s.event.type === 'encounter.discharged').length, 0);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(receiver.received.length, before);
  });

  it('a pended prior authorization becomes priorauth.decided on the backbone and reaches the subscription', async () => {
    const res = await fetch(gw.url + PAS, { method: 'POST', headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${await issuer.mint({ clientId: 'portal' })}` }, body: JSON.stringify(pasBundle('p8')) });
    assert.equal(res.status, 200);
    const cr = ((await res.json()) as { entry: Array<{ resource: { id: string; outcome: string } }> }).entry[0].resource;
    assert.equal(cr.outcome, 'queued');
    await waitFor(() => receiver.received.some((m) => m.type === 'priorauth.decided'), 5000, 'priorauth.decided delivery');
    const got = receiver.received.find((m) => m.type === 'priorauth.decided')!;
    assert.equal(got.subject, `ClaimResponse/${cr.id}`);
    assert.equal(got.patient, 'p8');
    assert.equal(got.data.decision, 'approved');
    assert.equal(receiver.rejected, 0);
  });
});

describe('hcgw validate: legacy event types need schemas', () => {
  const base = (legacy: string, events: string, routes = '[]') => `
version: 1
upstreams: { payer: { url: http://127.0.0.1:9 } }
audit: { hashKey: ${HASH_KEY}, sinks: [{ kind: stdout }] }
legacy:
${legacy}
${events}
routes: ${routes}
`;
  const eventsWith = (schemas: string) => `events:\n  engine: { kind: embedded, dir: "${tempDir('hcgw-legacy-validate-')}" }\n  schemas:${schemas}`;

  it('rejects a listener or a pas route publishing a type with no schema in events:', async () => {
    const pasRoute = `
  - id: prior-auth
    layer: process
    match: { methods: [POST], path: ${PAS} }
    target: { adapter: pas, upstream: payer, path: /pas/Claim/$submit, statusPath: "/pas/ClaimResponse/:id" }
    policies: [{ audit: {} }]`;
    const issues = await configIssues(base('  mllp: [{ name: adt-in, port: 0, allowedFacilities: [X], events: [A01, A02] }]', eventsWith('\n    encounter.admitted: { "1": { type: object } }'), pasRoute));
    assertIssues(issues, [/^legacy\.mllp\[0\]\.events\[1\]: ADT A02 publishes "encounter\.transferred", but no schema is declared/, /^routes\[0\]\.target\.adapter: a pended prior authorization publishes "priorauth\.decided", but no schema/]);
    assert.equal(issues.length, 2, issues.join('\n'));
    // The listener's default trigger list counts too.
    const defaults = await configIssues(base('  mllp: [{ name: adt-in, port: 0, allowedFacilities: [X] }]', eventsWith('\n    encounter.admitted: { "1": { type: object } }')));
    assert.equal(defaults.filter((i) => i.startsWith('legacy.mllp[0].events')).length, 5, defaults.join('\n'));
  });

  it('rejects an MLLP listener with neither events: nor legacy.eventLog (nothing to publish to)', async () => {
    assertIssues(await configIssues(base('  mllp: [{ name: adt-in, port: 0, allowedFacilities: [X] }]', '')), [/^legacy\.mllp: needs an `events:` section/]);
  });
});

/**
 * A gateway with `legacy.eventLog` (plus `events`, when given) and its MLLP listener started: `run` gets
 * them, the file, and the listener's captured log lines; everything is closed afterwards.
 */
async function withEventLogGateway(events: string, run: (h: { gw: Gateway; file: string; lines: string[]; sendA01(controlId: string): Promise<string> }) => Promise<void>): Promise<void> {
  const dir = tempDir('hcgw-legacy-fallback-');
  const file = join(dir, 'legacy-events.jsonl');
  const gw = await startGateway(`
version: 1
upstreams: {}
audit: { hashKey: ${HASH_KEY}, flushIntervalMs: 0, sinks: [{ kind: file, path: ${join(dir, 'audit.log')} }] }
legacy:
  eventLog: { file: ${file} }
  mllp: [{ name: adt-in, port: 0, allowedFacilities: [${SANDBOX_FACILITY}], events: [A01] }]
${events ? `events:\n  engine: { kind: embedded, dir: "${join(dir, 'events')}" }\n  schemas: ${events}` : ''}
routes: []
`);
  const { logger, lines } = captureLogger();
  let legacy: LegacyRuntime | undefined;
  try {
    legacy = await startListeners(gw.gw, logger);
    const port = legacy.listeners[0].port;
    const sendA01 = async (controlId: string) => ackCode((await sendMllp([sampleAdt('A01', { controlId })], { host: '127.0.0.1', port, timeoutMs: 5000 }))[0]).code;
    await run({ gw: gw.gw, file, lines, sendA01 });
  } finally {
    await legacy?.close();
    await gw.close();
  }
}

describe('legacy.eventLog: the deprecated fallback', () => {
  it('without events:, adapters still publish to the file, and config and runtime warn with the path and the fix', () =>
    withEventLogGateway('', async ({ gw, file, lines, sendA01 }) => {
      const w = gw.compiled.warnings.find((x) => x.path === 'legacy.eventLog');
      assert.match(w?.message ?? '', /is deprecated: declare an `events:` section .*docs\/legacy-and-payers\.md#migrating-from-legacyeventlog/);
      const warning = lines.map((l) => JSON.parse(l) as Record<string, string>).find((l) => l.level === 'warn' && /legacy\.eventLog is deprecated/.test(l.message));
      assert.ok(warning, lines.join('\n'));
      assert.equal(warning.path, 'legacy.eventLog');
      assert.equal(warning.file, file);
      assert.match(warning.fix, /declare an `events:` section/);
      assert.equal(await sendA01('FB-1'), 'AA');
      assert.deepEqual((await readEventLog(file)).map((r) => r.event.type), ['encounter.admitted']);
    }));

  it('with events: configured, legacy.eventLog is ignored (warning) and nothing is written to it', () =>
    withEventLogGateway('{ encounter.admitted: { "1": { type: object } } }', async ({ gw, file, lines, sendA01 }) => {
      assert.match(gw.compiled.warnings.find((x) => x.path === 'legacy.eventLog')?.message ?? '', /is ignored: the legacy adapters publish to the event backbone/);
      assert.ok(!lines.some((l) => /legacy\.eventLog is deprecated/.test(l)), 'no fallback warning: the backbone is used');
      assert.equal(await sendA01('IG-1'), 'AA');
      assert.equal((await gw.events!.log.read(1, 10)).length, 1);
      assert.deepEqual(await readEventLog(file), []);
    }));
});
