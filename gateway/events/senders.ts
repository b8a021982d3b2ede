import type { NatsConnection } from '@nats-io/transport-node';
import type { SubscriptionConfig } from './config.ts';
import type { CloudEvent } from './types.ts';

/** A failed attempt: `detail` is a status code or error kind, never the receiver's body (it may hold PHI). */
export class DeliveryFailed extends Error {
  override name = 'DeliveryFailed';
  constructor(readonly detail: string) {
    super(detail);
  }
}

export interface Sender {
  /** Delivers one (policy-processed) event; resolves on the receiver's acknowledgement, rejects with DeliveryFailed. */
  send(event: CloudEvent, sequence: number, signal: AbortSignal): Promise<void>;
  close?(): Promise<void>;
}

async function post(url: string, body: string, headers: Record<string, string>, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', body, headers, signal, redirect: 'manual' });
  } catch (err) {
    throw new DeliveryFailed(signal.aborted ? 'timeout' : `network: ${(err as Error & { cause?: { code?: string } }).cause?.code ?? 'error'}`);
  }
  // The body is drained, never read into errors or logs.
  await res.arrayBuffer().catch(() => undefined);
  if (res.status < 200 || res.status > 299) throw new DeliveryFailed(`http ${res.status}`);
}

/** Standard Webhooks: `webhook-id` is the event id (the receiver's idempotency key), signed over id.timestamp.body. */
async function webhookSender(d: { url: string; secret: string }): Promise<Sender> {
  const { Webhook } = await import('standardwebhooks');
  const signer = new Webhook(d.secret);
  return {
    send(event, _sequence, signal) {
      const body = JSON.stringify(event);
      const now = new Date();
      return post(d.url, body, {
        'content-type': 'application/cloudevents+json',
        'webhook-id': event.id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signer.sign(event.id, now, body),
      }, signal);
    },
  };
}

/**
 * FHIR R4 Subscriptions Backport (IG 1.1) rest-hook, full-resource content: a `history` Bundle whose first
 * entry is the SubscriptionStatus Parameters, then the event's resource.
 */
export function notificationBundle(subscriptionId: string, topic: string, event: CloudEvent, eventNumber: number, baseUrl = 'urn:hcgw'): Record<string, unknown> {
  const resource = event.data as { resourceType?: string; id?: string } | undefined;
  const focus = resource?.resourceType && resource.id ? `${resource.resourceType}/${resource.id}` : undefined;
  return {
    resourceType: 'Bundle',
    type: 'history',
    timestamp: new Date().toISOString(),
    entry: [
      {
        fullUrl: `urn:uuid:${event.id}-status`,
        resource: {
          resourceType: 'Parameters',
          meta: { profile: ['http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4'] },
          parameter: [
            { name: 'subscription', valueReference: { reference: `${baseUrl}/Subscription/${subscriptionId}` } },
            { name: 'topic', valueCanonical: topic },
            { name: 'status', valueCode: 'active' },
            { name: 'type', valueCode: 'event-notification' },
            { name: 'events-since-subscription-start', valueString: String(eventNumber) },
            {
              name: 'notification-event',
              part: [
                { name: 'event-number', valueString: String(eventNumber) },
                { name: 'timestamp', valueInstant: event.time },
                ...(focus ? [{ name: 'focus', valueReference: { reference: focus } }] : []),
              ],
            },
          ],
        },
        request: { method: 'GET', url: `Subscription/${subscriptionId}/$status` },
        response: { status: '200' },
      },
      ...(resource && typeof resource === 'object' && resource.resourceType
        ? [{ fullUrl: focus ? `${baseUrl}/${focus}` : `urn:uuid:${event.id}`, resource, request: { method: 'PUT', url: focus ?? resource.resourceType }, response: { status: '200' } }]
        : []),
    ],
  };
}

/** Event numbers are log sequences: increasing per subscription, with gaps where the filter skipped events. */
function fhirRestHookSender(id: string, d: { url: string; topic: string; header?: string[] }): Sender {
  const extra = Object.fromEntries((d.header ?? []).map((h) => [h.slice(0, h.indexOf(':')).toLowerCase(), h.slice(h.indexOf(':') + 1).trim()]));
  return {
    send(event, sequence, signal) {
      const bundle = notificationBundle(id, d.topic, event, sequence);
      return post(d.url, JSON.stringify(bundle), { ...extra, 'content-type': 'application/fhir+json' }, signal);
    },
  };
}

/** Core NATS publish, confirmed by a flush round trip (the server has it; consumers are its business). */
async function natsSender(d: { subject: string; servers?: string[] }): Promise<Sender> {
  const { connect } = await import('@nats-io/transport-node');
  let conn: Promise<NatsConnection> | undefined;
  const connection = () => (conn ??= connect({ servers: d.servers ?? ['nats://127.0.0.1:4222'], reconnect: true, maxReconnectAttempts: -1 }).catch((err) => {
    conn = undefined;
    throw err;
  }));
  return {
    async send(event) {
      try {
        const nc = await connection();
        nc.publish(d.subject, JSON.stringify(event));
        await nc.flush();
      } catch (err) {
        throw new DeliveryFailed(`nats: ${(err as Error).name}`);
      }
    },
    async close() {
      if (conn) await (await conn.catch(() => undefined))?.drain().catch(() => undefined);
    },
  };
}

/** Each delivery kind imports its client library here, so configs without that kind never load it. */
export async function createSender(sub: SubscriptionConfig): Promise<Sender> {
  const d = sub.delivery;
  switch (d.kind) {
    case 'webhook':
      return webhookSender(d);
    case 'fhir-rest-hook':
      return fhirRestHookSender(sub.id, d);
    case 'nats':
      return natsSender(d);
  }
}
