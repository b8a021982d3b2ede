/** Demo ERP: supply items, inventory, purchase orders, cost centers and cost postings (plain JSON). */
import { erpSeed } from './data.ts';
import { counter, filterBy, HttpError, list, money, need, refId, reply, requireFields, startUpstream, type ListenOpts, type Route, type UpstreamServer } from './http.ts';

export interface ErpOptions extends ListenOpts {
  /**
   * When set, every ERP call needs `Authorization: Bearer <token>` that this check accepts (the sandbox
   * passes one that wants a token the dev IdP issued to the gateway itself, audience hcgw-erp).
   */
  verifyToken?: (token: string) => Promise<boolean>;
}

/** Wraps each handler so it first checks the caller's Bearer token (RFC 6750 errors). */
function requireToken(routes: Route[], verify: (token: string) => Promise<boolean>): Route[] {
  const refuse = (error?: string) => new HttpError(401, 'A valid access token issued to the gateway is required', error ?? 'unauthorized', {}, { 'www-authenticate': `Bearer realm="sandbox-erp"${error ? `, error="${error}"` : ''}` });
  return routes.map(([method, pattern, handler]) => [method, pattern, async (ctx) => {
    const token = /^Bearer +(\S+)$/i.exec(ctx.headers.authorization ?? '')?.[1];
    if (!token) throw refuse();
    if (!(await verify(token))) throw refuse('invalid_token');
    return handler(ctx);
  }]);
}

export async function startErp(opts: ErpOptions = {}): Promise<UpstreamServer> {
  let db = erpSeed();
  const poIds = counter('po-', 5002);
  const postingIds = counter('pst-');
  const reset = () => { db = erpSeed(); poIds.reset(); postingIds.reset(); };

  const item = (id: string) => need(db.items.find((i) => i.id === id), `Item ${id}`);
  const stock = (id: string) => need(db.inventory.find((i) => i.itemId === id), `Inventory for item ${id}`);
  /** The ERP only knows encounters by the organization that served them (Encounter.serviceProvider). */
  const costCenterForEncounter = (enc: string) => {
    const org = db.encounterOrg[refId(enc)!];
    return org ? db.costCenters.find((c) => c.organization === org) : undefined;
  };

  const routes: Route[] = [
      ['GET', '/items', (ctx) => list(filterBy(db.items, ctx.query, { category: 'category', sku: 'sku' }))],
      ['GET', '/items/:id', (ctx) => reply(200, item(ctx.params.id))],
      ['GET', '/inventory', () => list(db.inventory)],
      ['GET', '/inventory/:itemId', (ctx) => reply(200, stock(ctx.params.itemId))],
      ['POST', '/inventory/:itemId/decrement', (ctx) => {
        const s = stock(ctx.params.itemId);
        const { quantity } = ctx.json();
        if (!Number.isInteger(quantity) || quantity <= 0) throw new HttpError(400, "Field 'quantity' must be a positive integer");
        if (s.onHand < quantity) throw new HttpError(409, `Insufficient stock for ${s.itemId}`, 'insufficient_stock', { onHand: s.onHand, requested: quantity });
        s.onHand -= quantity;
        return reply(200, s);
      }],
      ['GET', '/purchase-orders', (ctx) => list(filterBy(db.purchaseOrders, ctx.query, { status: 'status', costCenter: 'costCenter' }))],
      ['GET', '/purchase-orders/:id', (ctx) => reply(200, need(db.purchaseOrders.find((p) => p.id === ctx.params.id), `Purchase order ${ctx.params.id}`))],
      ['POST', '/purchase-orders', (ctx) => {
        const b = ctx.json();
        requireFields(b, { lines: 'array' });
        if (!b.lines.length) throw new HttpError(400, 'A purchase order needs at least one line');
        const lines = b.lines.map((l: Record<string, unknown>, i: number) => {
          if (!l || typeof l.itemId !== 'string' || !Number.isInteger(l.quantity) || (l.quantity as number) <= 0) throw new HttpError(400, `lines[${i}] needs itemId and a positive integer quantity`);
          const it = db.items.find((x) => x.id === l.itemId);
          if (!it) throw new HttpError(422, `lines[${i}]: unknown item ${l.itemId}`);
          return { itemId: it.id, quantity: l.quantity as number, unitCost: it.unitCost };
        });
        if (b.costCenter !== undefined && !db.costCenters.some((c) => c.id === b.costCenter)) throw new HttpError(422, `Unknown cost center ${b.costCenter}`);
        const po = {
          id: poIds.next(), status: 'submitted', supplier: typeof b.supplier === 'string' ? b.supplier : 'Acme Synthetic Supplies',
          costCenter: b.costCenter as string, lines, total: money(lines.reduce((s: number, l: { quantity: number; unitCost: { value: number } }) => s + l.quantity * l.unitCost.value, 0)),
          createdAt: new Date().toISOString(),
        };
        db.purchaseOrders.push(po);
        return reply(201, po, { location: `${ctx.baseUrl}/purchase-orders/${po.id}` });
      }],
      ['GET', '/cost-centers', (ctx) => {
        const enc = ctx.query.get('encounter');
        if (enc === null) return list(db.costCenters);
        const cc = costCenterForEncounter(enc);
        return list(cc ? [cc] : []);
      }],
      ['GET', '/cost-centers/:id', (ctx) => reply(200, need(db.costCenters.find((c) => c.id === ctx.params.id), `Cost center ${ctx.params.id}`))],
      ['GET', '/postings', (ctx) => list(filterBy(db.postings, ctx.query, { costCenter: 'costCenter', encounter: 'encounter' }))],
      ['POST', '/postings', (ctx) => {
        const b = ctx.json();
        requireFields(b, { amount: 'number' });
        // Callers that only know the encounter (e.g. a composed "close encounter" process) get its cost center.
        const cc = typeof b.costCenter === 'string' ? db.costCenters.find((c) => c.id === b.costCenter)
          : typeof b.encounter === 'string' ? costCenterForEncounter(b.encounter) : undefined;
        if (!cc) throw new HttpError(422, 'Unknown cost center: pass `costCenter` or a known `encounter`');
        const posting = {
          id: postingIds.next(), costCenter: cc.id, glAccount: cc.glAccount, amount: money(b.amount),
          ...Object.fromEntries(['encounter', 'itemId', 'description', 'reference'].filter((k) => typeof b[k] === 'string').map((k) => [k, b[k]])),
          postedAt: new Date().toISOString(),
        };
        db.postings.push(posting);
        return reply(201, posting, { location: `${ctx.baseUrl}/postings/${posting.id}` });
      }],
  ];
  return startUpstream({ name: 'erp', reset, routes: opts.verifyToken ? requireToken(routes, opts.verifyToken) : routes }, opts);
}
