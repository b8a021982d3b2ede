/**
 * The top-level `audit:` section of routes.yaml: where audit records go and how patient identifiers are
 * keyed. It is shared by every route's `audit` policy, so one gateway writes one hash chain.
 */

const bufferProps = {
  maxBufferRecords: {
    type: 'integer',
    minimum: 1,
    maximum: 1000000,
    default: 10000,
    description: 'Records held while the sink is slow or failing; beyond this, new records are dropped and counted (hcgw_audit_records_dropped_total)',
  },
  batchSize: { type: 'integer', minimum: 1, maximum: 10000, default: 500, description: 'Most records written (or POSTed) at once' },
  retryInitialMs: { type: 'integer', minimum: 10, maximum: 60000, default: 250, description: 'First wait after a failed write; doubles per failure' },
  retryMaxMs: { type: 'integer', minimum: 10, maximum: 600000, default: 30000, description: 'Longest wait between retries' },
  closeTimeoutMs: { type: 'integer', minimum: 0, maximum: 120000, default: 5000, description: 'On shutdown, how long to keep trying to deliver buffered records' },
  name: { type: 'string', pattern: '^[a-zA-Z0-9_.-]+$', description: 'Label of this sink in metrics and logs (default: its kind)' },
} as const;

export const fileSinkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'path'],
  properties: {
    kind: { const: 'file' },
    path: { type: 'string', minLength: 1, description: 'JSON-lines file (relative to the config file); rotated files get a .NNNNNN suffix' },
    maxBytes: {
      type: 'integer',
      minimum: 0,
      default: 104857600,
      description: 'Rotate when the file would grow past this many bytes (0: never); the chain continues into the next file',
    },
    spillPath: {
      type: 'string',
      minLength: 1,
      description: 'Second file (best on another file system) that takes records while `path` cannot be written (disk full); moved back into `path`, in order, once it can',
    },
    spillMaxBytes: { type: 'integer', minimum: 4096, default: 268435456, description: 'Most bytes the spill file holds; beyond, records wait in the buffer' },
    ...bufferProps,
  },
} as const;

const stdoutSink = {
  type: 'object',
  additionalProperties: false,
  required: ['kind'],
  properties: { kind: { const: 'stdout' }, ...bufferProps },
} as const;

const httpSink = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'url'],
  properties: {
    kind: { const: 'http' },
    url: { type: 'string', format: 'uri', pattern: '^https?://', description: 'SIEM endpoint; receives POSTs of application/x-ndjson' },
    headers: {
      type: 'object',
      additionalProperties: { type: 'string' },
      default: {},
      'x-secret': true,
      description: 'Extra request headers (e.g. Authorization: "${env:SIEM_TOKEN}")',
    },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 120000, default: 10000, description: 'Timeout of one POST' },
    ...bufferProps,
  },
} as const;

export const auditSectionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['hashKey', 'sinks'],
  description: 'Audit trail shared by every route with the `audit` policy',
  properties: {
    source: {
      type: 'string',
      pattern: '^[A-Za-z0-9_.:@-]{1,128}$',
      description: 'Identity of this gateway instance in every record (default: hostname:pid)',
    },
    hashKey: {
      type: 'string',
      minLength: 32,
      'x-secret': true,
      description: 'HMAC-SHA256 key for patient identifiers (and patient subjects); give it as "${env:NAME}" or "${file:/path}"',
    },
    durability: {
      enum: ['batched', 'before-response'],
      default: 'batched',
      description:
        'batched: records are written after the response, at most flushIntervalMs later (a crash loses that window); before-response: each response is held until its record was appended to every file sink (write(2), not fsync)',
    },
    flushIntervalMs: {
      type: 'integer',
      minimum: 0,
      maximum: 10000,
      default: 100,
      description: 'Records are sealed into the chain and handed to the sinks at most this long after the response (0: next tick)',
    },
    sinks: {
      type: 'array',
      minItems: 1,
      description: 'Where records go; each gets the same chained lines',
      items: {
        type: 'object',
        required: ['kind'],
        properties: { kind: { enum: ['file', 'stdout', 'http'], description: 'Sink type' } },
        allOf: [
          { if: { properties: { kind: { const: 'file' } } }, then: fileSinkSchema },
          { if: { properties: { kind: { const: 'stdout' } } }, then: stdoutSink },
          { if: { properties: { kind: { const: 'http' } } }, then: httpSink },
        ],
      },
    },
  },
} as const;

interface BufferOptions {
  name?: string;
  maxBufferRecords: number;
  batchSize: number;
  retryInitialMs: number;
  retryMaxMs: number;
  closeTimeoutMs: number;
}

export interface FileSinkConfig extends BufferOptions {
  kind: 'file';
  path: string;
  maxBytes: number;
  spillPath?: string;
  spillMaxBytes: number;
}
export interface StdoutSinkConfig extends BufferOptions {
  kind: 'stdout';
}
export interface HttpSinkConfig extends BufferOptions {
  kind: 'http';
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}
export type AuditSinkConfig = FileSinkConfig | StdoutSinkConfig | HttpSinkConfig;

/** The `audit:` section after validation (defaults filled in). */
export interface AuditConfig {
  source?: string;
  hashKey: string;
  durability: 'batched' | 'before-response';
  flushIntervalMs: number;
  sinks: AuditSinkConfig[];
}
