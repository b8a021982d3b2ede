import { Webhook } from 'standardwebhooks';
import { BadRequest, EventRejected, InvalidWebhookSignature, ServiceUnavailable } from '../sdk/errors.ts';
import type { Exchange, RouteConfig } from '../sdk/types.ts';
import type { Target } from '../targets/system.ts';
import { EventRefused } from './schemas.ts';
import type { CloudEvent, EventPublisher } from './types.ts';

interface InboundTargetConfig {
  secret: string;
  source?: string;
  types?: string[];
}

const header = (ex: Exchange, name: string) => {
  const v = ex.req.headers[name];
  return typeof v === 'string' ? v : '';
};

/**
 * Turns a verified payload into the envelope to store. A CloudEvent keeps its attributes but must carry the
 * webhook id as its id (the replay key); a Standard Webhooks payload `{type, timestamp, data}` is wrapped.
 */
function envelopeOf(payload: unknown, webhookId: string, source: string): CloudEvent {
  if (!payload || typeof payload !== 'object' || Array.isArray(payload)) throw new BadRequest({ detail: 'The payload must be a JSON object', reason: 'bad-payload' });
  const p = payload as Record<string, unknown>;
  if (p.specversion !== undefined) {
    if (p.id !== webhookId) throw new BadRequest({ detail: 'The CloudEvent id must equal the webhook-id header', reason: 'id-mismatch' });
    return { ...(p as unknown as CloudEvent), source };
  }
  return { specversion: '1.0', id: webhookId, source, type: p.type as string, time: typeof p.timestamp === 'string' ? p.timestamp : new Date().toISOString(), data: p.data };
}

/**
 * `layer: event` routes: receive an event from outside, verify its Standard Webhooks signature (HMAC over
 * id.timestamp.body, 5-minute tolerance), store it (deduplicated by the webhook id: a replay is stored
 * once) and answer 2xx only once it is durable: 202 when stored, 200 when it already was.
 */
export function createInboundTarget(route: RouteConfig, publisher: EventPublisher | undefined): Target {
  const cfg = route.target as unknown as InboundTargetConfig;
  const verifier = new Webhook(cfg.secret);
  const source = cfg.source ?? `/routes/${route.id}`;
  const allowed = cfg.types ? new Set(cfg.types) : undefined;
  return {
    kind: 'event-inbound',
    async handle(ex) {
      const body = ex.body ?? Buffer.alloc(0);
      const webhookId = header(ex, 'webhook-id');
      let payload: unknown;
      try {
        payload = verifier.verify(body, { 'webhook-id': webhookId, 'webhook-timestamp': header(ex, 'webhook-timestamp'), 'webhook-signature': header(ex, 'webhook-signature') });
      } catch {
        throw new InvalidWebhookSignature({ reason: 'webhook-signature' });
      }
      const event = envelopeOf(payload, webhookId, source);
      if (allowed && !allowed.has(event.type)) throw new EventRejected({ detail: 'This sender may not publish this event type', reason: 'type-not-allowed' });
      if (!publisher) throw new ServiceUnavailable({ detail: 'The event backbone is not running', reason: 'events-unavailable' });
      let receipt;
      try {
        receipt = await publisher.publish(event);
      } catch (err) {
        if (err instanceof EventRefused) throw new EventRejected({ detail: `The event was refused (${err.reason}) and dead-lettered`, reason: err.reason });
        throw new ServiceUnavailable({ detail: 'The event could not be stored', reason: 'event-store-failed' });
      }
      return { response: { status: receipt.stored ? 202 : 200, headers: { 'content-type': 'application/json' }, body: { id: event.id, sequence: receipt.sequence, duplicate: !receipt.stored } } };
    },
  };
}
