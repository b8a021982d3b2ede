/**
 * Schema and types of the top-level `events:` section of routes.yaml (docs/events.md documents every key)
 * and of a route's `emit:`. Spliced into gateway/config/schema.ts.
 */
import { DURATION_PATTERN } from '../lib/duration.ts';

const strings = (description: string) => ({ type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, description });

const deliverySchema = {
  type: 'object',
  required: ['kind'],
  description: 'How events reach the subscriber',
  oneOf: [
    {
      additionalProperties: false,
      required: ['kind', 'url', 'secret'],
      properties: {
        kind: { const: 'webhook', description: 'HTTP POST of the CloudEvent (structured JSON), signed with Standard Webhooks' },
        url: { type: 'string', pattern: '^https?://', description: 'Receiver URL' },
        secret: { type: 'string', pattern: '^whsec_[A-Za-z0-9+/=]{24,}$', 'x-secret': true, description: 'Standard Webhooks secret (`whsec_` + base64, ≥ 18 bytes); use ${env:…} or ${file:…}' },
      },
    },
    {
      additionalProperties: false,
      required: ['kind', 'url', 'topic'],
      properties: {
        kind: { const: 'fhir-rest-hook', description: 'FHIR R4 Subscriptions Backport rest-hook: a history Bundle, SubscriptionStatus first' },
        url: { type: 'string', pattern: '^https?://', description: "The subscriber's endpoint" },
        topic: { type: 'string', minLength: 1, description: 'SubscriptionTopic canonical URL named in each notification' },
        header: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9-]+: .+$' }, 'x-secret': true, description: 'Subscription.channel.header lines sent with each notification (e.g. `Authorization: Bearer …`)' },
      },
    },
    {
      additionalProperties: false,
      required: ['kind', 'subject'],
      properties: {
        kind: { const: 'nats', description: 'Core NATS publish for internal consumers (acknowledged by the server flush)' },
        subject: { type: 'string', pattern: '^[A-Za-z0-9_.>*-]+$', description: 'Subject to publish to' },
        servers: { type: 'array', items: { type: 'string' }, minItems: 1, description: 'NATS servers (default nats://127.0.0.1:4222)' },
      },
    },
  ],
};

const subscriptionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'filter', 'delivery'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'Unique subscription id (metrics, audit, resend, consumer name)' },
    description: { type: 'string' },
    filter: {
      type: 'object',
      additionalProperties: false,
      required: ['types'],
      properties: {
        types: strings('Event types delivered (exact names)'),
        attributes: {
          type: 'object',
          additionalProperties: { type: 'array', items: { type: ['string', 'number', 'boolean'] }, minItems: 1 },
          default: {},
          description: 'Envelope attribute (extension) → accepted values; all listed attributes must match; an absent attribute does not match',
        },
        patient: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,64}$', description: "Only events about this patient (the envelope's `patient`): a patient app's compartment" },
      },
    },
    subscriber: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: "Who receives the events, as the subscription's policies see it (the principal of an API call)",
      properties: {
        subject: { type: 'string', default: 'subscription', description: 'Principal subject' },
        clientId: { type: 'string', description: 'Principal client id (minimize `when.clientIds`)' },
        fhirUser: { type: 'string', description: 'e.g. `Patient/p1` or `Practitioner/x` (consent actor)' },
        patient: { type: 'string', description: 'SMART patient context (patient-compartment, consent)' },
        scopes: { type: 'array', items: { type: 'string' }, default: [], description: 'Scopes granted' },
        purposeOfUse: { type: 'string', pattern: '^[A-Z]+$', description: 'Purpose of use declared for every delivery (minimize, consent)' },
        claims: { type: 'object', default: {}, description: 'Extra claims (e.g. `role`) for role-based profiles' },
      },
    },
    fhir: {
      type: 'object',
      additionalProperties: false,
      required: ['resourceType'],
      description: 'FHIR resource type of the event data, for policies that need it (patient-compartment)',
      properties: { resourceType: { type: 'string', pattern: '^[A-Z][A-Za-z]+$' } },
    },
    policies: {
      type: 'array',
      default: [],
      items: { type: 'object', minProperties: 1, maxProperties: 1 },
      description: 'Policy chain run on each event before delivery (minimize, consent, patient-compartment, rate-limit, plugins); the event data is the response body',
    },
    delivery: deliverySchema,
    retry: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        maxAttempts: { type: 'integer', minimum: 1, maximum: 100, default: 8, description: 'Attempts before the event goes to the dead-letter store' },
        baseMs: { type: 'integer', minimum: 1, maximum: 600000, default: 500, description: 'Backoff base: wait n is random in [0, min(maxMs, baseMs × 2^(n-1))] (full jitter)' },
        maxMs: { type: 'integer', minimum: 1, maximum: 3600000, default: 60000, description: 'Cap of one backoff wait' },
      },
    },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 120000, default: 10000, description: 'One delivery attempt times out after this' },
    concurrency: { type: 'integer', minimum: 1, maximum: 256, default: 4, description: 'Ordering keys delivered in parallel (events of one key are always one at a time, in order)' },
    orderBy: { type: 'string', pattern: '^[a-z0-9]{1,20}$', default: 'partitionkey', description: 'Envelope attribute whose value is the ordering key; events without it are ordered by `patient`, else unordered' },
    circuitBreaker: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        failures: { type: 'integer', minimum: 1, maximum: 10000, default: 5, description: 'Consecutive failed attempts that open the breaker' },
        openMs: { type: 'integer', minimum: 10, maximum: 3600000, default: 10000, description: 'Time open (no attempts, no retries spent) before a probe' },
      },
    },
  },
};

const slaRuleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'start', 'expect', 'within'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'Rule name: the `rule` label of hcgw_sla_breaches_total' },
    start: { type: 'string', description: 'Event type that opens the window (e.g. encounter.discharged)' },
    expect: { type: 'string', description: 'Event type that must follow with the same correlation value (e.g. charge.posted)' },
    within: { type: 'string', pattern: DURATION_PATTERN, description: 'Window (e.g. 4h, 30m)' },
    correlate: { type: 'string', pattern: '^[a-z0-9]{1,20}$', default: 'partitionkey', description: 'Envelope attribute both events share' },
  },
};

export const eventsSectionSchema = {
  type: 'object',
  additionalProperties: false,
  description: 'The event backbone (docs/events.md)',
  properties: {
    engine: {
      type: 'object',
      additionalProperties: false,
      default: { kind: 'embedded' },
      required: ['kind'],
      properties: {
        kind: { enum: ['embedded', 'jetstream'], description: 'embedded: an fsync-ed file log in `dir`; jetstream: NATS JetStream' },
        dir: { type: 'string', default: './data/events', description: 'embedded: log directory, relative to routes.yaml' },
        servers: { type: 'array', items: { type: 'string' }, default: ['nats://127.0.0.1:4222'], description: 'jetstream: NATS servers' },
        stream: { type: 'string', pattern: '^[A-Za-z0-9_-]+$', default: 'HCGW_EVENTS', description: 'jetstream: stream name (subjects `<stream>._p<NNN>.<type>`, see docs/events.md#engines)' },
        partitions: {
          type: 'integer',
          minimum: 1,
          maximum: 256,
          default: 16,
          description: 'jetstream: ordering partitions (events are placed by a hash of `partitionkey`, else `patient`); fixed for the life of a stream, the same on every instance',
        },
      },
    },
    schemas: {
      type: 'object',
      default: {},
      propertyNames: { pattern: '^[a-z0-9][a-z0-9.-]{0,127}$' },
      additionalProperties: {
        type: 'object',
        minProperties: 1,
        propertyNames: { pattern: '^[0-9]{1,6}$' },
        additionalProperties: { type: 'object' },
      },
      description: 'Event type → version → JSON Schema of `data` (dataschema `urn:hcgw:schema:<type>:<version>`)',
    },
    subscriptions: { type: 'array', items: subscriptionSchema, default: [] },
    sla: { type: 'array', items: slaRuleSchema, default: [], description: 'Business SLA rules: `start` without `expect` within the window is a breach' },
    maxInFlight: { type: 'integer', minimum: 1, maximum: 100000, default: 1000, description: 'Events read ahead per subscription' },
  },
};

/** A route's `emit:`: on a listed status, publish an event built from the exchange with the template language. */
export const emitSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'data'],
  description: 'Publish an event after a successful response',
  properties: {
    type: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,127}$', description: 'Declared event type' },
    on: { type: 'array', items: { type: 'integer', minimum: 100, maximum: 599 }, minItems: 1, default: [200, 201, 204], description: 'Response statuses that emit' },
    data: { description: 'Event data: a template mapping over params, query, body (the request body), principal' },
    patient: { type: 'string', description: 'Template of the patient id the event is about' },
    partitionkey: { type: 'string', description: 'Template of the ordering key' },
    attributes: { type: 'object', additionalProperties: { type: 'string' }, default: {}, description: 'Extension attribute → template' },
  },
};

/** An inbound `layer: event` route's target. */
export const inboundTargetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['secret'],
  properties: {
    secret: { type: 'string', pattern: '^whsec_[A-Za-z0-9+/=]{24,}$', 'x-secret': true, description: "The sender's Standard Webhooks secret" },
    source: { type: 'string', description: 'CloudEvents `source` of accepted events (default `/routes/<id>`)' },
    types: { type: 'array', items: { type: 'string' }, minItems: 1, description: 'Event types this sender may publish (each must have a schema)' },
  },
};

export interface SubscriptionConfig {
  id: string;
  description?: string;
  filter: { types: string[]; attributes: Record<string, Array<string | number | boolean>>; patient?: string };
  subscriber: { subject: string; clientId?: string; fhirUser?: string; patient?: string; scopes: string[]; purposeOfUse?: string; claims: Record<string, unknown> };
  fhir?: { resourceType: string };
  policies: Array<Record<string, unknown>>;
  delivery: { kind: 'webhook'; url: string; secret: string } | { kind: 'fhir-rest-hook'; url: string; topic: string; header?: string[] } | { kind: 'nats'; subject: string; servers?: string[] };
  retry: { maxAttempts: number; baseMs: number; maxMs: number };
  timeoutMs: number;
  concurrency: number;
  orderBy: string;
  circuitBreaker: { failures: number; openMs: number };
}

export interface SlaRule {
  name: string;
  start: string;
  expect: string;
  within: string;
  correlate: string;
}

export interface EventsConfig {
  engine: { kind: 'embedded' | 'jetstream'; dir: string; servers: string[]; stream: string; partitions: number };
  schemas: Record<string, Record<string, Record<string, unknown>>>;
  subscriptions: SubscriptionConfig[];
  sla: SlaRule[];
  maxInFlight: number;
}

export interface EmitConfig {
  type: string;
  on: number[];
  data: unknown;
  patient?: string;
  partitionkey?: string;
  attributes: Record<string, string>;
}
