/** Demo billing system: plain JSON claims, charges, payments and account balances. */
import { Webhook } from 'standardwebhooks';
import { billingSeed, PATIENT_IDS } from './data.ts';
import { counter, filterBy, HttpError, list, money, need, refId, reply, requireFields, sameRef, startUpstream, type ListenOpts, type UpstreamServer } from './http.ts';

/**
 * The sandbox story's webhook secret: the gateway's `discharge-billing` subscription (routes.yaml) signs
 * with it. A development value, like the sandbox's keys; a real subscription reads its secret from ${env:…}.
 */
export const SANDBOX_WEBHOOK_SECRET = 'whsec_c2FuZGJveC1kaXNjaGFyZ2UtYmlsbGluZy1kZXY=';

/** What billing books when a discharge event arrives: CPT 99238, hospital discharge day management. */
const DISCHARGE_CHARGE = { code: '99238', description: 'Hospital discharge day management', amount: 110 };

export async function startBilling(opts: ListenOpts = {}): Promise<UpstreamServer> {
  let db = billingSeed();
  const ids = counter('chg-');
  const webhook = new Webhook(SANDBOX_WEBHOOK_SECRET);
  /** Event ids already booked: deliveries are at-least-once, the charge is booked once. */
  let booked = new Set<string>();
  const reset = () => { db = billingSeed(); ids.reset(); booked = new Set(); };

  return startUpstream({
    name: 'billing', reset,
    routes: [
      ['GET', '/claims', (ctx) => list(filterBy(db.claims, ctx.query, { patient: 'patient', encounter: 'encounter', status: 'status' }))],
      ['GET', '/claims/:id', (ctx) => reply(200, need(db.claims.find((c) => c.id === ctx.params.id), `Claim ${ctx.params.id}`))],
      ['GET', '/charges', (ctx) => list(filterBy(db.charges, ctx.query, { patient: 'patient', encounter: 'encounter' }))],
      ['GET', '/charges/:id', (ctx) => reply(200, need(db.charges.find((c) => c.id === ctx.params.id), `Charge ${ctx.params.id}`))],
      ['POST', '/charges', (ctx) => {
        const b = ctx.json();
        requireFields(b, { encounter: 'string', code: 'string', amount: 'number' });
        if (b.amount < 0) throw new HttpError(400, "Field 'amount' must not be negative");
        // Deliberately no idempotency here: the gateway's idempotency policy is what tests exercise.
        const patient = b.patient ?? db.claims.find((c) => sameRef(c.encounter, b.encounter))?.patient;
        if (typeof patient !== 'string') throw new HttpError(422, 'Unknown encounter: pass `patient` explicitly');
        const charge = {
          id: ids.next(), encounter: b.encounter, patient, code: b.code, amount: b.amount,
          ...(typeof b.description === 'string' ? { description: b.description } : {}),
          createdAt: new Date().toISOString(),
        };
        db.charges.push(charge);
        return reply(201, charge, { location: `${ctx.baseUrl}/charges/${charge.id}` });
      }],
      // Standard Webhooks receiver: an `encounter.discharged` event books the discharge charge once per event id.
      ['POST', '/events/encounters', (ctx) => {
        let event: { id?: string; type?: string; patient?: string; data?: { encounter?: { id?: string } } };
        try {
          event = webhook.verify(ctx.text, ctx.headers as Record<string, string>) as typeof event;
        } catch {
          throw new HttpError(401, 'Webhook signature does not verify');
        }
        const encounter = event.data?.encounter?.id;
        if (event.type !== 'encounter.discharged' || !event.id || !encounter || !event.patient) return reply(204);
        if (booked.has(event.id)) return reply(204);
        booked.add(event.id);
        db.charges.push({ id: ids.next(), encounter: `Encounter/${encounter}`, patient: `Patient/${event.patient}`, ...DISCHARGE_CHARGE, createdAt: new Date().toISOString() });
        return reply(204);
      }],
      ['GET', '/payments', (ctx) => list(filterBy(db.payments, ctx.query, { patient: 'patient', claim: 'claim' }))],
      ['GET', '/accounts/:patientId/balance', (ctx) => {
        const id = refId(ctx.params.patientId)!;
        const mine = <T extends { patient: string }>(rows: T[]) => rows.filter((r) => refId(r.patient) === id);
        const claims = mine(db.claims).filter((c) => c.status !== 'denied');
        if (!PATIENT_IDS.includes(id) && !claims.length && !mine(db.charges).length) throw new HttpError(404, `Account for patient ${id} not found`);
        const charged = claims.reduce((s, c) => s + c.total.value, 0) + mine(db.charges).reduce((s, c) => s + c.amount, 0);
        const paid = mine(db.payments).reduce((s, p) => s + p.amount.value, 0);
        return reply(200, { patient: `Patient/${id}`, charged: money(charged), paid: money(paid), balance: money(charged - paid) });
      }],
    ],
  }, opts);
}
