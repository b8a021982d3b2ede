import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { resolve } from 'node:path';
import tls from 'node:tls';
import type { Logger } from 'winston';
import { EventRefused } from '../../events/schemas.ts';
import type { EventPublisher, CloudEvent } from '../../events/types.ts';
import { parseDuration } from '../../lib/duration.ts';
import type { Store } from '../../store/types.ts';
import type { LegacyAuditor } from '../audit.ts';
import type { MllpListenerConfig } from '../schema.ts';
import { AdtRejected, headerOfText, readAdt, type AdtHeader, type AdtMessage } from './adt.ts';
import { buildAck, type AckCode } from './ack.ts';
import { frame, MllpDecoder, MllpFramingError } from './mllp.ts';

export interface MllpDeps {
  store: Store;
  publisher: EventPublisher;
  auditor: LegacyAuditor;
  logger: Logger;
  configDir: string;
}

export interface MllpListener {
  readonly name: string;
  readonly port: number;
  close(): Promise<void>;
}

interface Answer {
  code: AckCode;
  header?: Partial<AdtHeader>;
  reason?: string;
  msg?: AdtMessage;
  eventId?: string;
  sequence?: number;
  duplicate?: boolean;
}

const ACTION: Record<string, 'C' | 'U'> = { A01: 'C', A04: 'C' };

function tlsOptions(cfg: NonNullable<MllpListenerConfig['tls']>, configDir: string): tls.TlsOptions {
  const read = (f: string) => readFileSync(resolve(configDir, f));
  return {
    cert: read(cfg.certFile),
    key: read(cfg.keyFile),
    ...(cfg.caFile ? { ca: read(cfg.caFile) } : {}),
    requestCert: cfg.requireClientCert,
    rejectUnauthorized: cfg.requireClientCert,
  };
}

/**
 * One HL7 v2 ADT listener. Per connection, messages are handled strictly in arrival order (original-mode
 * senders wait for each ACK, and order matters for ADT). Per message: parse and validate (AR), de-duplicate
 * by sending facility + control id in the store, publish the mapped event, and only once the publisher
 * says it is durable answer AA; a store or publish failure answers AE so the sender retries, an event the
 * backbone refuses (schema) AR.
 */
export async function startMllpListener(cfg: MllpListenerConfig, deps: MllpDeps): Promise<MllpListener> {
  const dedupMs = parseDuration(cfg.dedupTtl);
  const accept = { events: cfg.events, facilities: cfg.allowedFacilities };
  const sockets = new Set<net.Socket>();

  const dedupKey = (m: AdtMessage) => `legacy:mllp:${cfg.name}:${m.sendingFacility}:${m.controlId}`;

  const answerOf = async (text: string): Promise<Answer> => {
    let msg: AdtMessage;
    try {
      msg = readAdt(text, accept);
    } catch (err) {
      if (err instanceof AdtRejected) return { code: 'AR', header: err.header ?? headerOfText(text), reason: err.reason };
      deps.logger.error('mllp: unexpected error while reading a message', { listener: cfg.name, error: (err as Error).message });
      return { code: 'AE', header: headerOfText(text), reason: 'internal error' };
    }
    const digest = createHash('sha256').update(text.replace(/\r\n|\n/g, '\r')).digest('base64url');
    const key = dedupKey(msg);
    let seen: string | undefined;
    try {
      seen = await deps.store.get(key);
    } catch {
      return { code: 'AE', header: msg, msg, reason: 'store unavailable' };
    }
    if (seen !== undefined) {
      // The same message again (a sender that missed our ACK): ACK it again, publish nothing.
      if (seen === digest) return { code: 'AA', header: msg, msg, duplicate: true };
      return { code: 'AR', header: msg, msg, reason: 'control id reused with different content' };
    }
    const eventId = `${cfg.name}:${msg.sendingFacility}:${msg.controlId}`;
    const encounter = msg.resources.encounter as { id?: string } | undefined;
    const event: CloudEvent = {
      specversion: '1.0',
      id: eventId,
      source: `/mllp/${cfg.name}`,
      type: msg.eventType,
      time: new Date().toISOString(),
      datacontenttype: 'application/json',
      dataschema: `urn:hcgw:schema:${msg.eventType}:1`,
      subject: encounter?.id ? `Encounter/${encounter.id}` : `Patient/${msg.patientId}`,
      data: msg.resources,
      partitionkey: msg.patientId,
      patient: msg.patientId,
      hl7trigger: msg.trigger,
      hl7controlid: msg.controlId,
    };
    let receipt;
    try {
      receipt = await deps.publisher.publish(event);
    } catch (err) {
      // The backbone refused the event (envelope or schema): resending the same message cannot help.
      if (err instanceof EventRefused) {
        deps.logger.warn('mllp: event refused by the backbone', { listener: cfg.name, reason: err.reason });
        return { code: 'AR', header: msg, msg, reason: `event refused (${err.reason})` };
      }
      deps.logger.error('mllp: event could not be stored', { listener: cfg.name, error: (err as Error).message });
      return { code: 'AE', header: msg, msg, reason: 'event log unavailable' };
    }
    // The event is durable: AA from here on. The dedup mark failing only means a resend is published
    // again, which the log's id de-duplication absorbs.
    await deps.store.set(key, digest, { ttlMs: dedupMs }).catch((err: Error) => deps.logger.warn('mllp: dedup mark not stored', { listener: cfg.name, error: err.message }));
    return { code: 'AA', header: msg, msg, eventId, sequence: receipt.sequence, duplicate: !receipt.stored };
  };

  const audit = (a: Answer, address: string | undefined, startedAt: number) => {
    const h = a.header ?? {};
    deps.auditor.write({
      type: 'hl7v2',
      subtype: `${h.messageType || 'unknown'}^${h.trigger || 'unknown'}`,
      action: ACTION[h.trigger ?? ''] ?? 'U',
      outcome: { code: a.code === 'AA' ? '0' : a.code === 'AR' ? '4' : '8', ack: a.code, ...(a.reason ? { reason: a.reason } : {}) },
      // A sending system, not a person: its address and names are not PHI.
      agent: { application: h.sendingApplication, facility: h.sendingFacility, address },
      entity: {
        listener: cfg.name,
        controlId: h.controlId,
        ...(a.msg ? { eventType: a.msg.eventType, patientHashes: [deps.auditor.hash(a.msg.patientId)] } : {}),
        ...(a.eventId ? { eventId: a.eventId, sequence: a.sequence } : {}),
        ...(a.duplicate ? { duplicate: true } : {}),
      },
      latencyMs: Math.round((performance.now() - startedAt) * 10) / 10,
    });
  };

  const onConnection = (socket: net.Socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.setTimeout(cfg.idleTimeoutMs, () => socket.destroy());
    const decoder = new MllpDecoder(cfg.maxMessageBytes);
    let queue: Promise<void> = Promise.resolve();
    const handle = async (text: string) => {
      const startedAt = performance.now();
      const answer = await answerOf(text);
      audit(answer, socket.remoteAddress, startedAt);
      if (!socket.destroyed) socket.write(frame(buildAck(answer.code, answer.header, randomUUID().replace(/-/g, '').slice(0, 20), answer.reason)));
    };
    socket.on('data', (chunk: Buffer) => {
      let messages: string[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        // Nothing can be acknowledged without a frame: the connection is cut, the sender resends.
        deps.logger.warn('mllp: framing error, connection closed', { listener: cfg.name, reason: err instanceof MllpFramingError ? err.reason : 'unknown' });
        socket.destroy();
        return;
      }
      for (const text of messages) queue = queue.then(() => handle(text)).catch((err: Error) => {
        deps.logger.error('mllp: message handling failed', { listener: cfg.name, error: err.message });
        socket.destroy();
      });
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
  };

  const server = cfg.tls ? tls.createServer(tlsOptions(cfg.tls, deps.configDir), onConnection) : net.createServer(onConnection);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(cfg.port, cfg.host, () => ok());
  });
  const port = (server.address() as net.AddressInfo).port;
  deps.logger.info('mllp listener started', { listener: cfg.name, host: cfg.host, port, tls: Boolean(cfg.tls) });
  return {
    name: cfg.name,
    port,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        for (const s of sockets) s.destroy();
      }),
  };
}
