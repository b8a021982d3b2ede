import express, { type Express, type Request, type Response } from 'express';
import { writeProblem } from '../http/problem.ts';
import { BadRequest, ResourceNotFound, ServiceUnavailable } from '../sdk/errors.ts';
import type { EventBackbone } from './backbone.ts';
import { notificationBundle } from './senders.ts';
import { matchesFilter } from './worker.ts';

/** `--from` / `--to`: a sequence number or an ISO time. */
export function parsePosition(v: unknown): number | Date | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new BadRequest({ detail: 'from/to must be a sequence or an ISO time', reason: 'bad-position' });
  if (/^[0-9]{1,15}$/.test(v)) return Number(v);
  const t = new Date(v);
  if (Number.isNaN(t.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(v)) throw new BadRequest({ detail: 'from/to must be a sequence or an ISO time', reason: 'bad-position' });
  return t;
}

const MAX_EVENTS_PAGE = 100;

/**
 * The admin API's event part (behind the admin token): dead letters (list, retry, drop), resend by
 * sequence or time, and the FHIR backport `$status` / `$events` of a rest-hook subscription.
 */
export function mountEventsAdmin(app: Express, backbone: () => EventBackbone | undefined): void {
  const r = express.Router();
  const need = (res: Response) => {
    const b = backbone();
    if (!b) writeProblem(res, new ServiceUnavailable({ detail: 'No event backbone is configured', reason: 'events-unavailable' }));
    return b;
  };
  const handle = (fn: (req: Request, res: Response, b: EventBackbone) => Promise<void>) => async (req: Request, res: Response) => {
    const b = need(res);
    if (!b) return;
    try {
      await fn(req, res, b);
    } catch (err) {
      writeProblem(res, err instanceof BadRequest ? err : new BadRequest({ detail: (err as Error).message.split('\n')[0], reason: 'events-admin' }));
    }
  };
  r.get('/dead-letters', handle(async (req, res, b) => {
    const sub = typeof req.query.subscription === 'string' ? req.query.subscription : undefined;
    // Metadata only: the stored envelopes may hold PHI and stay in the store.
    res.json((await b.deadLetters(sub)).map(({ event: _e, ...meta }) => meta));
  }));
  r.post('/dead-letters/:id/retry', handle(async (req, res, b) => {
    if (!(await b.retryDeadLetter(String(req.params.id)))) return writeProblem(res, new ResourceNotFound({ reason: 'dead-letter' }));
    res.json({ retried: req.params.id });
  }));
  r.delete('/dead-letters/:id', handle(async (req, res, b) => {
    if (!(await b.log.removeDeadLetter(String(req.params.id)))) return writeProblem(res, new ResourceNotFound({ reason: 'dead-letter' }));
    res.json({ dropped: req.params.id });
  }));
  r.post('/subscriptions/:id/resend', handle(async (req, res, b) => {
    const from = parsePosition(req.query.from);
    if (from === undefined) throw new BadRequest({ detail: '`from` is required', reason: 'bad-position' });
    const queued = await b.resend(String(req.params.id), from, parsePosition(req.query.to));
    res.json({ subscription: req.params.id, queued });
  }));
  r.get('/subscriptions/:id/\\$status', handle(async (req, res, b) => {
    const sub = b.subscription(String(req.params.id));
    if (!sub) return writeProblem(res, new ResourceNotFound({ reason: 'subscription' }));
    const cp = await b.log.loadCheckpoint(sub.config.id);
    res.type('application/fhir+json').json({
      resourceType: 'Parameters',
      parameter: [
        { name: 'subscription', valueReference: { reference: `Subscription/${sub.config.id}` } },
        { name: 'status', valueCode: 'active' },
        { name: 'type', valueCode: 'query-status' },
        { name: 'events-since-subscription-start', valueString: String((cp?.next ?? 1) - 1) },
      ],
    });
  }));
  r.get('/subscriptions/:id/\\$events', handle(async (req, res, b) => {
    const sub = b.subscription(String(req.params.id));
    if (!sub || sub.config.delivery.kind !== 'fhir-rest-hook') return writeProblem(res, new ResourceNotFound({ reason: 'subscription' }));
    const since = Number(req.query.eventsSinceNumber ?? 1);
    const until = req.query.eventsUntilNumber === undefined ? Infinity : Number(req.query.eventsUntilNumber);
    if (!Number.isInteger(since) || since < 1) throw new BadRequest({ detail: 'eventsSinceNumber must be a positive integer', reason: 'bad-position' });
    const entries: unknown[] = [];
    for (const ev of await b.log.read(since, MAX_EVENTS_PAGE * 10)) {
      if (ev.sequence > until || entries.length >= MAX_EVENTS_PAGE) break;
      if (!matchesFilter(sub.config.filter, ev.event)) continue;
      // The same policy chain as a live notification: what a subscriber may not get live, it may not fetch.
      const bundle = await b.render(sub.config.id, ev);
      if (bundle) entries.push(...((notificationBundle(sub.config.id, sub.config.delivery.topic, bundle, ev.sequence).entry as unknown[]).slice(1)));
    }
    res.type('application/fhir+json').json({ resourceType: 'Bundle', type: 'history', entry: entries });
  }));
  app.use('/admin/events', r);
}
