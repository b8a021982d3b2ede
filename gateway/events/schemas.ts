import type { ValidateFunction } from 'ajv';
import { createAjv } from '../lib/ajv.ts';
import type { CloudEvent } from './types.ts';

/** CloudEvents 1.0 structured JSON envelope, strict: required attributes, lower-case alphanumeric extensions. */
const envelopeSchema = {
  type: 'object',
  required: ['specversion', 'id', 'source', 'type', 'time', 'data'],
  propertyNames: { pattern: '^[a-z0-9]{1,20}$' },
  properties: {
    specversion: { const: '1.0' },
    id: { type: 'string', minLength: 1, maxLength: 256 },
    source: { type: 'string', minLength: 1, maxLength: 1024 },
    type: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,127}$' },
    time: { type: 'string', format: 'date-time' },
    datacontenttype: { const: 'application/json' },
    dataschema: { type: 'string', minLength: 1 },
    subject: { type: 'string' },
    partitionkey: { type: 'string', minLength: 1, maxLength: 256 },
    patient: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,64}$' },
    data: {},
  },
  additionalProperties: { type: ['string', 'number', 'boolean'] },
} as const;

/** `urn:hcgw:schema:<type>:<version>`: the dataschema naming one declared schema version. */
export const schemaUrn = (type: string, version: string) => `urn:hcgw:schema:${type}:${version}`;

/** Why an event was refused: stable, PHI-free reason codes plus ajv's message (paths and keywords only). */
export class EventRefused extends Error {
  override name = 'EventRefused';
  constructor(
    readonly reason: 'invalid-envelope' | 'unknown-type' | 'unknown-schema-version' | 'schema-invalid',
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

const describe = (v: ValidateFunction) => (v.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');

/**
 * The declared event types and their versioned data schemas, compiled once at config load. `check`
 * validates an envelope and its data, filling `dataschema` with the newest version when the producer
 * named none.
 */
export class EventSchemas {
  private readonly byUrn = new Map<string, ValidateFunction>();
  private readonly latest = new Map<string, string>();
  private readonly envelope: ValidateFunction;

  constructor(declared: Record<string, Record<string, Record<string, unknown>>>) {
    const ajv = createAjv();
    this.envelope = ajv.compile(envelopeSchema);
    for (const [type, versions] of Object.entries(declared)) {
      const ordered = Object.keys(versions).sort((a, b) => Number(a) - Number(b));
      for (const v of ordered) this.byUrn.set(schemaUrn(type, v), ajv.compile(versions[v]));
      if (ordered.length) this.latest.set(type, schemaUrn(type, ordered.at(-1)!));
    }
  }

  has(type: string): boolean {
    return this.latest.has(type);
  }

  get types(): string[] {
    return [...this.latest.keys()];
  }

  /** Returns the envelope to store (with dataschema set) or throws EventRefused. */
  check(event: unknown): CloudEvent {
    if (!this.envelope(event)) throw new EventRefused('invalid-envelope', describe(this.envelope));
    const e = event as CloudEvent;
    const urn = e.dataschema ?? this.latest.get(e.type);
    if (!urn) throw new EventRefused('unknown-type', `no schema is declared for type ${e.type}`);
    const validate = this.byUrn.get(urn);
    if (!validate || !urn.startsWith(`urn:hcgw:schema:${e.type}:`)) throw new EventRefused('unknown-schema-version', `${urn} is not declared for ${e.type}`);
    if (!validate(e.data)) throw new EventRefused('schema-invalid', describe(validate));
    return e.dataschema ? e : { ...e, dataschema: urn };
  }
}
