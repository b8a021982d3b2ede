import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createAuditRegistry } from '../gateway/audit/registry.ts';
import type { CloudEvent, EventPublisher, PublishReceipt } from '../gateway/events/types.ts';
import { createLegacyAuditor } from '../gateway/legacy/audit.ts';
import { FileEventLog, readEventLog } from '../gateway/legacy/event-log.ts';
import { ackCode, sendMllp } from '../gateway/legacy/hl7/client.ts';
import { startMllpListener } from '../gateway/legacy/hl7/listener.ts';
import { frame, MllpDecoder } from '../gateway/legacy/hl7/mllp.ts';
import type { MllpListenerConfig } from '../gateway/legacy/schema.ts';
import { createMetrics } from '../gateway/ops/metrics.ts';
import { sampleAdt, SANDBOX_FACILITY, type AdtTrigger } from '../gateway/sandbox/adt.ts';
import { createMemoryStore } from '../gateway/store/memory.ts';
import { startLegacy } from '../gateway/legacy/runtime.ts';
import { createRedisStore } from '../gateway/store/redis.ts';
import type { Store } from '../gateway/store/types.ts';
import { auditSection, captureLogger, readAuditRecords, requireSharedRedis, tempDir, uniquePrefix, waitFor } from './helpers.ts';

const HASH_KEY = 'legacy-test-audit-hash-key-0123456789abcdef';

interface Harness {
  port: number;
  events: string;
  auditFile: string;
  /** Waits until the trail wrote at least `n` records. */
  flush(n: number): Promise<void>;
  close(): Promise<void>;
}

const open: Harness[] = [];
after(async () => {
  await Promise.all(open.map((h) => h.close()));
});

async function listen(opts: { publisher?: EventPublisher; store?: Store; config?: Partial<MllpListenerConfig> } = {}): Promise<Harness> {
  const dir = tempDir('hcgw-mllp-');
  const events = join(dir, 'events.jsonl');
  const auditFile = join(dir, 'audit.log');
  const { logger } = captureLogger();
  const registry = createAuditRegistry({ logger, metrics: createMetrics() });
  const auditor = createLegacyAuditor(registry, auditSection({ hashKey: HASH_KEY, flushIntervalMs: 0, sinks: [{ kind: 'file', path: auditFile }] }), dir);
  const log = new FileEventLog(events);
  const cfg: MllpListenerConfig = { name: 'adt-in', host: '127.0.0.1', port: 0, allowedFacilities: [SANDBOX_FACILITY], events: ['A01', 'A02', 'A03', 'A04', 'A08', 'A40'], dedupTtl: '1h', maxMessageBytes: 65536, idleTimeoutMs: 10000, ...opts.config };
  const listener = await startMllpListener(cfg, { store: opts.store ?? createMemoryStore(), publisher: opts.publisher ?? log, auditor, logger, configDir: dir });
  let closed = false;
  const h: Harness = {
    port: listener.port,
    events,
    auditFile,
    // The trail seals on a timer and the sink writes in batches: wait for the lines.
    flush: (n) => waitFor(() => readAuditRecords(auditFile).length >= n, 3000, `${n} audit records`),
    close: async () => {
      if (closed) return;
      closed = true;
      await listener.close();
      await auditor.release();
      await registry.close();
      await log.close();
    },
  };
  open.push(h);
  return h;
}

const send = (h: Harness, messages: string[]) => sendMllp(messages, { host: '127.0.0.1', port: h.port, timeoutMs: 5000 });

/** A raw socket that collects ACK frames, for tests that control the bytes and their timing. */
function rawClient(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  const decoder = new MllpDecoder(1 << 20);
  const acks: string[] = [];
  let closed = false;
  socket.on('data', (c: Buffer) => acks.push(...decoder.push(c)));
  socket.on('close', () => (closed = true));
  socket.on('error', () => undefined);
  return {
    socket,
    acks,
    get closed() {
      return closed;
    },
    connected: new Promise<void>((r) => socket.once('connect', () => r())),
    write: (b: Buffer) => new Promise<void>((r) => socket.write(b, () => r())),
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('MLLP ADT listener', () => {
  it('A01 → AA after the event is in the log; mapped Patient and Encounter; audit has control id and no PHI', async () => {
    const h = await listen();
    const [ack] = await send(h, [sampleAdt('A01', { encounter: 'e-p1-1', controlId: 'CTRL-A01-1' })]);
    assert.deepEqual(ackCode(ack), { code: 'AA', controlId: 'CTRL-A01-1', text: '' });
    const log = await readEventLog(h.events);
    assert.equal(log.length, 1);
    const ev = log[0].event as CloudEvent<Record<string, any>>;
    assert.equal(ev.type, 'encounter.admitted');
    assert.equal(ev.source, '/mllp/adt-in');
    assert.equal(ev.patient, 'p1');
    assert.equal(ev.subject, 'Encounter/e-p1-1');
    assert.equal(ev.data.patient.resourceType, 'Patient');
    assert.equal(ev.data.patient.birthDate, '1970-01-01');
    assert.equal(ev.data.patient.gender, 'female');
    assert.deepEqual(ev.data.encounter.class, { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP' });
    assert.equal(ev.data.encounter.status, 'in-progress');
    assert.equal(ev.data.encounter.subject.reference, 'Patient/p1');
    assert.equal(ev.data.encounter.period.start, '2024-01-15T08:00:00Z');
    await h.flush(1);
    const [rec] = readAuditRecords(h.auditFile);
    assert.equal(rec.type, 'hl7v2');
    assert.equal(rec.subtype, 'ADT^A01');
    assert.equal(rec.entity.controlId, 'CTRL-A01-1');
    assert.equal(rec.entity.sequence, 1);
    assert.equal(rec.outcome.ack, 'AA');
    const line = JSON.stringify(rec);
    assert.doesNotMatch(line, /Zyx|Testerly|"p1"|19700101/);
    assert.equal(rec.entity.patientHashes.length, 1);
  });

  it('several messages on one connection: each ACKed in order, each trigger its own event type', async () => {
    const h = await listen();
    const triggers: AdtTrigger[] = ['A04', 'A01', 'A02', 'A08', 'A03', 'A40'];
    const acks = await send(h, triggers.map((t, i) => sampleAdt(t, { encounter: 'e-p2-1', controlId: `SEQ-${i}` })));
    assert.deepEqual(acks.map((a) => ackCode(a).controlId), triggers.map((_, i) => `SEQ-${i}`));
    assert.ok(acks.every((a) => ackCode(a).code === 'AA'));
    const log = await readEventLog(h.events);
    assert.deepEqual(log.map((l) => l.event.type), ['encounter.registered', 'encounter.admitted', 'encounter.transferred', 'encounter.updated', 'encounter.discharged', 'patient.merged']);
    const discharged = log[4].event.data as Record<string, any>;
    assert.equal(discharged.encounter.status, 'finished');
    assert.ok(discharged.encounter.period.end);
    const merged = log[5].event.data as Record<string, any>;
    assert.deepEqual(merged.patient.link, [{ type: 'replaces', other: { reference: 'Patient/p9' } }]);
    assert.equal(log[2].event.data && (log[2].event.data as any).encounter.location[0].location.display, 'W2 / 202 / 1');
  });

  it('framing across TCP chunks: byte by byte, split between FS and CR, two frames in one chunk', async () => {
    const h = await listen();
    const c = rawClient(h.port);
    await c.connected;
    const one = frame(sampleAdt('A01', { controlId: 'CHUNK-1' }));
    for (const b of one.subarray(0, 40)) {
      await c.write(Buffer.from([b]));
    }
    await pause(30);
    await c.write(one.subarray(40, one.length - 1)); // everything up to FS
    await pause(50);
    assert.equal(c.acks.length, 0, 'no ACK before the frame is complete');
    await c.write(one.subarray(one.length - 1)); // the CR
    await waitFor(() => c.acks.length === 1, 3000, 'first ACK');
    const two = Buffer.concat([frame(sampleAdt('A08', { controlId: 'CHUNK-2' })), Buffer.from('\r\n'), frame(sampleAdt('A03', { controlId: 'CHUNK-3' }))]);
    const cut = 17;
    await c.write(Buffer.concat([two, frame(sampleAdt('A02', { controlId: 'CHUNK-4' })).subarray(0, cut)]));
    await c.write(frame(sampleAdt('A02', { controlId: 'CHUNK-4' })).subarray(cut));
    await waitFor(() => c.acks.length === 4, 3000, 'four ACKs');
    assert.deepEqual(c.acks.map((a) => ackCode(a).controlId), ['CHUNK-1', 'CHUNK-2', 'CHUNK-3', 'CHUNK-4']);
    assert.deepEqual(c.acks.map((a) => ackCode(a).code), ['AA', 'AA', 'AA', 'AA']);
    c.socket.destroy();
    assert.equal((await readEventLog(h.events)).length, 4);
  });

  it('malformed messages get AR with a reason and publish nothing', async () => {
    const h = await listen();
    const good = sampleAdt('A01', { controlId: 'BAD-X' });
    const cases: Array<[string, string]> = [
      ['PID|1||p1\rPV1|1|I', 'unparseable'],
      [good.replace(/\rPID\|1\|\|p1/, '\rPID|1||'), 'PID-3.1 missing'],
      [sampleAdt('A03', { controlId: 'BAD-A03' }).replace(/\|\d{14}$/, '|'), 'PV1-45.1 missing'],
      [good.replace('19700101', '1970-01-01'), 'PID-7.1 invalid'],
      [good.replace('ADT^A01^ADT_A01', 'ADT^A05^ADT_A05'), 'trigger event not accepted'],
      [good.replace('ADT^A01^ADT_A01', 'ORU^R01^ORU_R01'), 'message type not ADT'],
      [good.replace('|MSG', '|').replace(/\|BAD-X\|/, '||'), 'MSH-10 missing'],
      [good.replace('e-p1-1', 'e p1/../1'), 'PV1-19.1 invalid'],
      [good.replace('|F\r', '|Q\r'), 'PID-8 invalid'],
    ];
    const acks = await send(h, cases.map(([m]) => m));
    cases.forEach(([, reason], i) => {
      const a = ackCode(acks[i]);
      assert.equal(a.code, 'AR', `case ${i}: ${acks[i]}`);
      assert.equal(a.text, reason, `case ${i}`);
    });
    assert.match(acks[1], /\rERR\|\|\|101\^Required field missing/);
    assert.equal(ackCode(acks[1]).controlId, 'BAD-X', 'MSA-2 echoes the control id when it could be read');
    assert.deepEqual(await readEventLog(h.events), []);
    await h.flush(cases.length);
    const recs = readAuditRecords(h.auditFile);
    assert.equal(recs.length, cases.length);
    assert.ok(recs.every((r) => r.outcome.code === '4' && r.outcome.ack === 'AR'));
  });

  it('the ACK is sent only after the publisher resolved; a failing publisher gives AE and no AA', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const stored: CloudEvent[] = [];
    let fail = false;
    const publisher: EventPublisher = {
      async publish(e): Promise<PublishReceipt> {
        await gate;
        if (fail) throw new Error('disk full');
        stored.push(e);
        return { sequence: stored.length, stored: true };
      },
    };
    const h = await listen({ publisher });
    const c = rawClient(h.port);
    await c.connected;
    await c.write(frame(sampleAdt('A01', { controlId: 'GATED-1' })));
    await pause(300);
    assert.equal(c.acks.length, 0, 'no ACK while the event is not durable');
    release();
    await waitFor(() => c.acks.length === 1, 3000, 'ACK after publish');
    assert.equal(ackCode(c.acks[0]).code, 'AA');
    assert.equal(stored.length, 1);
    fail = true;
    await c.write(frame(sampleAdt('A03', { controlId: 'GATED-2' })));
    await waitFor(() => c.acks.length === 2, 3000, 'AE');
    assert.deepEqual(ackCode(c.acks[1]), { code: 'AE', controlId: 'GATED-2', text: 'event log unavailable' });
    // Not marked as seen: the sender's retry is processed again once the log is back.
    fail = false;
    await c.write(frame(sampleAdt('A03', { controlId: 'GATED-2' })));
    await waitFor(() => c.acks.length === 3, 3000, 'retry ACK');
    assert.equal(ackCode(c.acks[2]).code, 'AA');
    assert.equal(stored.length, 2);
    c.socket.destroy();
  });

  it('a duplicate control id is stored once (same and new connection, concurrent); reused id with other content → AR (Redis store)', async () => {
    const store = await createRedisStore({ url: await requireSharedRedis(), prefix: uniquePrefix('mllp'), commandTimeoutMs: 5000, connectTimeoutMs: 5000 });
    try {
      // A store still connecting answers AE (retryable), which is right but not what this test is about.
      await waitFor(() => store.ping(), 5000, 'redis store ready');
      const h = await listen({ store });
      const msg = sampleAdt('A01', { controlId: 'DUP-1', at: new Date('2026-01-01T00:00:00Z') });
      const acks = await send(h, [msg, msg]);
      const again = await send(h, [msg]);
      assert.deepEqual([...acks, ...again].map((a) => ackCode(a).code), ['AA', 'AA', 'AA']);
      const concurrent = sampleAdt('A08', { controlId: 'DUP-2' });
      const both = await Promise.all([send(h, [concurrent]), send(h, [concurrent])]);
      assert.ok(both.flat().every((a) => ackCode(a).code === 'AA'));
      const log = await readEventLog(h.events);
      assert.deepEqual(log.map((l) => l.event.hl7controlid), ['DUP-1', 'DUP-2']);
      const [changed] = await send(h, [msg.replace('Testerly-Zyx', 'Other-Zyx')]);
      assert.deepEqual(ackCode(changed), { code: 'AR', controlId: 'DUP-1', text: 'control id reused with different content' });
      assert.equal((await readEventLog(h.events)).length, 2);
      await h.flush(6);
      const recs = readAuditRecords(h.auditFile).filter((r) => r.entity.controlId === 'DUP-1');
      assert.deepEqual(recs.map((r) => Boolean(r.entity.duplicate)), [false, true, true, false]);
    } finally {
      await store.close();
    }
  });

  it('a disallowed sending facility is refused (AR) before validation, and nothing is published', async () => {
    const h = await listen();
    const variants = [
      sampleAdt('A01', { facility: 'OTHERHOSP', controlId: 'FAC-1' }),
      sampleAdt('A01', { facility: 'sandboxhosp', controlId: 'FAC-2' }),
      sampleAdt('A01', { facility: `${SANDBOX_FACILITY}X`, controlId: 'FAC-3' }),
      // An invalid message from an unknown sender learns only that it is not allowed.
      sampleAdt('A01', { facility: 'OTHERHOSP', controlId: 'FAC-4' }).replace('ADT^A01', 'ADT^A99'),
      sampleAdt('A01', { facility: '', controlId: 'FAC-5' }),
    ];
    const acks = await send(h, variants);
    assert.deepEqual(acks.map((a) => ackCode(a).text), ['sending facility not allowed', 'sending facility not allowed', 'sending facility not allowed', 'sending facility not allowed', 'MSH-4 missing']);
    assert.ok(acks.every((a) => ackCode(a).code === 'AR'));
    assert.deepEqual(await readEventLog(h.events), []);
  });

  it('bytes outside a frame or an oversized frame close the connection without an ACK', async () => {
    const h = await listen({ config: { maxMessageBytes: 2048 } });
    for (const bytes of [Buffer.from('GET / HTTP/1.1\r\n\r\n'), frame(`${sampleAdt('A01')}\r${'NTE|1||'.padEnd(4000, 'x')}`), Buffer.from([0x0b, 0x41, 0x1c, 0x41])]) {
      const c = rawClient(h.port);
      await c.connected;
      await c.write(bytes);
      await waitFor(() => c.closed, 3000, 'connection closed');
      assert.equal(c.acks.length, 0);
    }
    assert.deepEqual(await readEventLog(h.events), []);
  });

  it('over TLS: the handshake is required, then framing, ACK and facility rules hold as on TCP', async () => {
    const dir = tempDir('hcgw-mllp-tls-');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    assert.equal(made.status, 0, 'openssl is required for the TLS test');
    const h = await listen({ config: { tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), requireClientCert: false } } });
    const tlsOpts = { ca: readFileSync(join(dir, 'cert.pem')), servername: '127.0.0.1' };
    const acks = await sendMllp([sampleAdt('A01', { controlId: 'TLS-1' }), sampleAdt('A01', { controlId: 'TLS-2', facility: 'OTHERHOSP' })], { host: '127.0.0.1', port: h.port, tls: tlsOpts, timeoutMs: 5000 });
    assert.deepEqual(acks.map((a) => ackCode(a).code), ['AA', 'AR']);
    // Plain MLLP bytes to a TLS listener are a failed handshake: no ACK, nothing published.
    const c = rawClient(h.port);
    await c.connected;
    await c.write(frame(sampleAdt('A01', { controlId: 'TLS-PLAIN' })));
    await waitFor(() => c.closed, 3000, 'plain connection closed');
    assert.equal(c.acks.length, 0);
    assert.deepEqual((await readEventLog(h.events)).map((l) => l.event.hl7controlid), ['TLS-1']);
  });

  it('startLegacy refuses MLLP without an audit section or an event log (fail closed)', async () => {
    const { logger } = captureLogger();
    const registry = createAuditRegistry({ logger, metrics: createMetrics() });
    const listener = { name: 'x', host: '127.0.0.1', port: 0, allowedFacilities: ['A'], events: ['A01' as const], dedupTtl: '1h', maxMessageBytes: 4096, idleTimeoutMs: 5000 };
    const base = { configDir: tempDir(), store: createMemoryStore(), audit: registry, logger };
    await assert.rejects(startLegacy({ ...base, config: { legacy: { mllp: [listener] } } }), /audit/);
    await assert.rejects(startLegacy({ ...base, config: { legacy: { mllp: [listener] }, audit: auditSection({ hashKey: HASH_KEY, sinks: [{ kind: 'stdout' }] }) } }), /eventLog/);
    const none = await startLegacy({ ...base, config: {} });
    assert.deepEqual(none.listeners, []);
    await registry.close();
  });
});
