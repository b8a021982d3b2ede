/**
 * Demo event subscribers for the sandbox story (README "Events in the sandbox"): what a CRM / telehealth
 * SaaS, the hospital's charge-capture service and the patient portal would run to receive the gateway's
 * notifications. Each box verifies what it receives the way a real receiver would (Standard Webhooks
 * signatures with the `standardwebhooks` package, the portal's bearer header) and keeps what arrived, to
 * be read back with `GET /received?box=<name>`. Synthetic data only; the secrets are public sandbox files.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { HttpError, reply, startUpstream, type Ctx, type ListenOpts, type UpstreamServer } from './http.ts';

const keyFile = (name: string) => fileURLToPath(new URL(`./keys/${name}`, import.meta.url));
/** The Standard Webhooks secrets routes.yaml gives the subscriptions (`${file:…}`), read from the same files. */
export const SANDBOX_WEBHOOK_SECRET_FILES = { crm: keyFile('crm.whsec'), 'charge-capture': keyFile('charge-capture.whsec') } as const;
/** The `Authorization` line routes.yaml sends with the portal's FHIR rest-hook notifications. */
export const PORTAL_HOOK_TOKEN = 'sandbox-portal-hook-token';

export interface Received {
  box: string;
  id: string;
  type?: string;
  receivedAt: string;
  /** The same id arrived before (at-least-once delivery: receivers de-duplicate by id). */
  duplicate: boolean;
  body: unknown;
}

export interface ChargeCapture {
  /** Where the gateway listens; set by `hcgw start --sandbox` once it does. */
  gatewayUrl?: string;
  /** A token for the charge-capture service's own calls (erp.write billing.write). */
  token(): Promise<string>;
}

export interface Receivers extends UpstreamServer {
  received(box?: string): Received[];
  chargeCapture: ChargeCapture;
}

/** A discharge becomes the discharge kit charge, through the gateway's own process API. */
const DISCHARGE_KIT = { itemId: 'itm-100', quantity: 1, code: '99238', amount: 95 };

export async function startReceivers(opts: ListenOpts & { token: () => Promise<string> }): Promise<Receivers> {
  let received: Received[] = [];
  const webhooks = Object.fromEntries(Object.entries(SANDBOX_WEBHOOK_SECRET_FILES).map(([box, f]) => [box, new Webhook(readFileSync(f, 'utf8').trim())]));
  const chargeCapture: ChargeCapture = { token: opts.token };

  const receivedIn = (box?: string | null) => received.filter((r) => !box || r.box === box);
  const seen = (box: string, id: string) => received.some((x) => x.box === box && x.id === id);
  const keep = (box: string, id: string, body: unknown, duplicate = seen(box, id)): void => {
    received.push({ box, id, type: (body as { type?: string })?.type, receivedAt: new Date().toISOString(), duplicate, body });
  };

  const verified = (ctx: Ctx, box: string): { id: string; event: Record<string, any> } => {
    const hook = webhooks[box];
    if (!hook) throw new HttpError(404, `No webhook box ${box}`);
    const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(ctx.headers[h] ?? '')]));
    try {
      return { id: headers['webhook-id'], event: hook.verify(ctx.text, headers) as Record<string, any> };
    } catch {
      throw new HttpError(401, 'Bad webhook signature');
    }
  };

  /**
   * The charge-capture service: for each discharge, post the discharge kit through the gateway's
   * `encounter-supply-usage` process API (ERP stock, billing charge, ERP cost posting), with the event id
   * as its Idempotency-Key so a redelivered event never charges twice. Not done → 503, and the gateway's
   * backbone retries the delivery later.
   */
  const capture = async (id: string, event: Record<string, any>) => {
    const encounter = event.data?.encounter?.id;
    if (event.type !== 'encounter.discharged' || typeof encounter !== 'string') return;
    if (!chargeCapture.gatewayUrl) throw new HttpError(503, 'Charge capture is not connected to the gateway yet');
    let res: Response;
    try {
      res = await fetch(`${chargeCapture.gatewayUrl}/process/encounters/${encodeURIComponent(encounter)}/supply-usage`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await chargeCapture.token()}`, 'content-type': 'application/json', 'idempotency-key': id },
        body: JSON.stringify(DISCHARGE_KIT),
      });
    } catch {
      throw new HttpError(503, 'The gateway could not be reached');
    }
    if (!res.ok) throw new HttpError(503, `The gateway answered ${res.status}`);
    return res.json();
  };

  const server = await startUpstream({
    name: 'receivers',
    reset: () => { received = []; },
    routes: [
      ['GET', '/received', (ctx) => {
        const rows = receivedIn(ctx.query.get('box'));
        return reply(200, { data: rows, total: rows.length });
      }],
      ['POST', '/hooks/portal-p1', (ctx) => {
        if (ctx.headers.authorization !== `Bearer ${PORTAL_HOOK_TOKEN}`) throw new HttpError(401, 'Missing or wrong bearer token');
        const bundle = ctx.json();
        const status = bundle.entry?.[0]?.resource;
        const number = status?.parameter?.find((p: { name: string }) => p.name === 'notification-event')?.part?.find((p: { name: string }) => p.name === 'event-number')?.valueString;
        keep('portal-p1', String(number ?? bundle.id), bundle);
        return reply(204);
      }],
      ['POST', '/hooks/:box', async (ctx) => {
        const { id, event } = verified(ctx, ctx.params.box);
        const duplicate = seen(ctx.params.box, id);
        const result = ctx.params.box === 'charge-capture' && !duplicate ? await capture(id, event) : undefined;
        keep(ctx.params.box, id, result === undefined ? event : { ...event, charged: result }, duplicate);
        return reply(204);
      }],
    ],
  }, opts);
  return Object.assign(server, { received: receivedIn, chargeCapture });
}
