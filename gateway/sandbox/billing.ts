/** Demo billing system: plain JSON claims, charges, payments and account balances. */
import { billingSeed, PATIENT_IDS } from './data.ts';
import { counter, filterBy, HttpError, list, money, need, refId, reply, requireFields, sameRef, startUpstream, type ListenOpts, type UpstreamServer } from './http.ts';

export async function startBilling(opts: ListenOpts = {}): Promise<UpstreamServer> {
  let db = billingSeed();
  const ids = counter('chg-');
  const reset = () => { db = billingSeed(); ids.reset(); };

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
