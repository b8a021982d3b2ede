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

/** An event as the log holds it: the envelope plus its position and when it was stored. */
export interface StoredEvent {
  sequence: number;
  /** Epoch ms at which the event became durable (publish-to-deliver latency, replay by time). */
  storedAt: number;
  event: CloudEvent;
}

/** Progress of one consumer (subscription): everything below `next` is done, plus `doneAbove` (out of order). */
export interface ConsumerCheckpoint {
  next: number;
  doneAbove: number[];
  /** Sequences to deliver again (resend, dead-letter retry), also when set while the gateway was stopped. */
  redo?: number[];
}

/** An event that will not be delivered without an operator: schema-invalid, or out of retries. */
export interface DeadLetter {
  /** Stable id of this dead letter (`<subscription|schema>:<sequence|event id>`). */
  id: string;
  /** Subscription it failed for; undefined for events refused before storage (schema-invalid). */
  subscription?: string;
  sequence?: number;
  event: unknown;
  reason: string;
  lastError?: string;
  attempts: number;
  at: string;
}

/**
 * The durable, append-only event log behind the backbone (embedded file log | NATS JetStream). Publish
 * deduplicates by event id; reading is by sequence; consumers keep their progress in checkpoints so a
 * restarted gateway resumes where it stopped (events in flight are delivered again: at-least-once).
 */
export interface EventLog extends EventPublisher {
  readonly kind: string;
  /** Events with sequence ≥ from, in order, at most `limit`. */
  read(from: number, limit: number): Promise<StoredEvent[]>;
  /** First sequence stored at or after `time` (lastSequence + 1 if none). */
  sequenceAt(time: Date): Promise<number>;
  lastSequence(): Promise<number>;
  /** Called after each durable append (the dispatcher wakes up); returns the unsubscribe function. */
  onAppend(listener: () => void): () => void;
  saveCheckpoint(consumer: string, cp: ConsumerCheckpoint): Promise<void>;
  loadCheckpoint(consumer: string): Promise<ConsumerCheckpoint | undefined>;
  addDeadLetter(dl: DeadLetter): Promise<void>;
  deadLetters(subscription?: string): Promise<DeadLetter[]>;
  removeDeadLetter(id: string): Promise<boolean>;
  /** True when the engine can take writes (readiness). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
