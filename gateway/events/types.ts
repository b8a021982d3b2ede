/**
 * The event backbone's contract, shared by event sources (route `emit:`, inbound `layer: event` routes,
 * process steps, the HL7 v2 / X12 adapters) and the engines behind it (embedded on-disk log, NATS JetStream).
 * Sources only ever see `EventPublisher`; subscriptions and delivery see `EventLog`.
 */

/** A CloudEvents 1.0 envelope in structured JSON mode. Extension attributes are lower-case alphanumerics. */
export interface CloudEvent<T = unknown> {
  specversion: '1.0';
  /** Unique per source; receivers use it as their idempotency key. */
  id: string;
  /** URI-reference naming the producer, e.g. `/routes/ehr-encounter-discharge` or `/mllp/adt-in`. */
  source: string;
  /** Declared event type, e.g. `encounter.discharged`. */
  type: string;
  time: string;
  datacontenttype?: 'application/json';
  /** Versioned schema declared in config, e.g. `urn:hcgw:schema:encounter.discharged:1`. */
  dataschema?: string;
  subject?: string;
  data: T;
  /** Ordering key (per patient, per claim…): events with one key are delivered in publish order. */
  partitionkey?: string;
  /** Patient the event is about (bare FHIR id): drives compartment and consent checks on delivery. */
  patient?: string;
  [extension: string]: unknown;
}

/** What a publish returns once the event is durably stored (and only then). */
export interface PublishReceipt {
  /** Position in the log: monotonically increasing per stream. */
  sequence: number;
  /** False when an event with this id was already stored (deduplicated): nothing new was written. */
  stored: boolean;
}

/** The one call event sources make. Resolves only after the event is durable; rejects otherwise. */
export interface EventPublisher {
  publish(event: CloudEvent): Promise<PublishReceipt>;
}
