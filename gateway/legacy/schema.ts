/**
 * The top-level `legacy:` section of routes.yaml: HL7 v2 MLLP listeners and the event log the legacy
 * adapters publish to. Spliced into gateway/config/schema.ts with one line; docs/legacy-and-payers.md
 * documents every key.
 */
import { DURATION_PATTERN } from '../lib/duration.ts';

const ADT_EVENTS = ['A01', 'A02', 'A03', 'A04', 'A08', 'A40'] as const;

const mllpListener = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'port', 'allowedFacilities'],
  properties: {
    name: { type: 'string', pattern: '^[a-zA-Z0-9_.-]+$', description: 'Listener name (audit records, event source `/mllp/<name>`, dedup keys)' },
    host: { type: 'string', default: '127.0.0.1', description: 'Address to bind' },
    port: { type: 'integer', minimum: 0, maximum: 65535, description: 'TCP port (HL7 MLLP; 2575 is customary)' },
    tls: {
      type: 'object',
      additionalProperties: false,
      required: ['certFile', 'keyFile'],
      description: 'Serve MLLP over TLS instead of plain TCP',
      properties: {
        certFile: { type: 'string', description: 'Server certificate (PEM), relative to the config file' },
        keyFile: { type: 'string', description: 'Server private key (PEM)' },
        caFile: { type: 'string', description: 'CA bundle (PEM) for client certificates' },
        requireClientCert: { type: 'boolean', default: false, description: 'Mutual TLS: refuse senders without a certificate signed by caFile' },
      },
    },
    allowedFacilities: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'string', minLength: 1 },
      description: 'Sending facilities (MSH-4.1) accepted; any other gets AR and nothing is published',
    },
    events: {
      type: 'array',
      uniqueItems: true,
      items: { enum: ADT_EVENTS },
      default: [...ADT_EVENTS],
      description: 'ADT trigger events accepted (others get AR)',
    },
    dedupTtl: { type: 'string', pattern: DURATION_PATTERN, default: '7d', description: 'How long a message control id (per facility) is remembered for de-duplication' },
    maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 16777216, default: 1048576, description: 'Largest MLLP frame; a longer one closes the connection' },
    idleTimeoutMs: { type: 'integer', minimum: 1000, maximum: 3600000, default: 300000, description: 'A connection silent for this long is closed' },
  },
} as const;

export const legacySectionSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'Legacy and payer connectivity: HL7 v2 over MLLP (X12 and PAS are route targets, see docs/legacy-and-payers.md)',
  properties: {
    eventLog: {
      type: 'object',
      additionalProperties: false,
      required: ['file'],
      description: 'Durable event log the adapters publish to (append + fsync) until the event backbone is configured',
      properties: { file: { type: 'string', minLength: 1, description: 'JSON-lines file, relative to the config file' } },
    },
    mllp: { type: 'array', items: mllpListener, default: [], description: 'HL7 v2 MLLP listeners' },
  },
} as const;

export type AdtEvent = (typeof ADT_EVENTS)[number];

export interface MllpListenerConfig {
  name: string;
  host: string;
  port: number;
  tls?: { certFile: string; keyFile: string; caFile?: string; requireClientCert: boolean };
  allowedFacilities: string[];
  events: AdtEvent[];
  dedupTtl: string;
  maxMessageBytes: number;
  idleTimeoutMs: number;
}

export interface LegacyConfig {
  eventLog?: { file: string };
  mllp: MllpListenerConfig[];
}
