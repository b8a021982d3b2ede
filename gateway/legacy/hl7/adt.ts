import { Message } from 'node-hl7-client';
import type { AdtEvent } from '../schema.ts';
import { ADT_MAPPING, EVENT_TYPE_OF, REQUIRED_FIELDS, mapResources, type FieldReader } from './mapping.ts';

/** Header fields an ACK needs; recoverable from most messages even when the body is invalid. */
export interface AdtHeader {
  controlId: string;
  sendingApplication: string;
  sendingFacility: string;
  receivingApplication: string;
  receivingFacility: string;
  messageType: string;
  trigger: string;
  version: string;
}

/** What the listener needs from one inbound message once it is parsed and validated. */
export interface AdtMessage extends AdtHeader {
  trigger: AdtEvent;
  patientId: string;
  eventType: string;
  resources: Record<string, unknown>;
}

export class AdtRejected extends Error {
  constructor(
    /** Stable reason for the ACK text, metrics and the audit record (never a field value). */
    readonly reason: string,
    readonly header?: AdtHeader,
  ) {
    super(reason);
    this.name = 'AdtRejected';
  }
}

function parse(text: string): Message {
  // node-hl7-client wants CR segment separators; senders often use CRLF or LF.
  const normalized = text.replace(/\r\n|\n/g, '\r').replace(/\r+$/, '');
  try {
    return new Message({ text: normalized });
  } catch {
    throw new AdtRejected('unparseable');
  }
}

function readerOf(msg: Message): FieldReader {
  return (path) => {
    try {
      return msg.get(path).toString().trim();
    } catch {
      return '';
    }
  };
}

function headerOf(read: FieldReader): AdtHeader {
  return {
    controlId: read('MSH.10'),
    sendingApplication: read('MSH.3.1'),
    sendingFacility: read('MSH.4.1'),
    receivingApplication: read('MSH.5.1'),
    receivingFacility: read('MSH.6.1'),
    messageType: read('MSH.9.1'),
    trigger: read('MSH.9.2'),
    version: read('MSH.12.1') || read('MSH.12'),
  };
}

/**
 * Parses and validates one ADT message against the events the listener accepts; throws AdtRejected with a
 * reason (and the header, when it could be read, for the ACK) for anything that cannot be mapped whole.
 */
export function readAdt(text: string, accept: { events: readonly AdtEvent[]; facilities: readonly string[] }): AdtMessage {
  const msg = parse(text);
  const read = readerOf(msg);
  const header = headerOf(read);
  const reject = (reason: string): never => {
    throw new AdtRejected(reason, header);
  };
  if (!header.controlId) reject('MSH-10 missing');
  if (!/^[\x21-\x7e]{1,50}$/.test(header.controlId)) reject('MSH-10 malformed');
  if (!header.sendingFacility) reject('MSH-4 missing');
  // Checked before anything else about the content: an unknown sender learns nothing about our rules.
  if (!accept.facilities.includes(header.sendingFacility)) reject('sending facility not allowed');
  if (header.messageType !== 'ADT') reject('message type not ADT');
  if (!(accept.events as readonly string[]).includes(header.trigger)) reject('trigger event not accepted');
  const trigger = header.trigger as AdtEvent;
  for (const field of REQUIRED_FIELDS[trigger]) if (!read(field)) reject(`${field.replace('.', '-')} missing`);
  const mapped = mapResources(ADT_MAPPING, trigger, read);
  if (!mapped.ok) reject(mapped.reason);
  return { ...header, trigger, patientId: read('PID.3.1'), eventType: EVENT_TYPE_OF[trigger], resources: mapped.ok ? mapped.resources : {} };
}

/** Best-effort header of a message that failed to parse as a whole (for the AR's MSA-2). */
export function headerOfText(text: string): AdtHeader | undefined {
  try {
    const h = headerOf(readerOf(parse(text)));
    return h.controlId ? h : undefined;
  } catch {
    return undefined;
  }
}
