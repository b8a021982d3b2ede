/**
 * Sandbox payer / clearinghouse, synthetic only: real-time X12 270→271 behind a CAQH CORE-style JSON
 * envelope, and a Da Vinci PAS-shaped Claim/$submit with pended decisions that resolve later.
 *
 * Members (Coverage.subscriberId → NM109 of loop 2100C):
 *   M-ACTIVE-*   active coverage, plan "SANDBOX GOLD PPO", one EB per requested service type
 *   M-INACTIVE-* inactive coverage (EB01 = 6)
 *   anything else AAA 75 (subscriber/insured not found), follow-up C
 * Prior auth (Claim.item[0].productOrService code): 72148 (MRI lumbar spine) is pended and approved
 * `decisionDelayMs` later; 99999 is denied; anything else is approved at once.
 */
import x12 from 'node-x12';
import { counter, HttpError, reply, startUpstream, type ListenOpts, type UpstreamServer } from './http.ts';

const { X12Interchange, X12Parser } = x12;

export const PENDED_CODE = '72148';
export const DENIED_CODE = '99999';
const REVIEW_ACTION_URL = 'http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-reviewAction';

const d8 = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');
const hm = (d: Date) => d.toISOString().slice(11, 16).replace(':', '');

interface Inquiry { trn: string; memberId: string; lastName: string; serviceTypes: string[]; senderId: string; receiverId: string }

function readInquiry(edi: string): Inquiry {
  let ic;
  try {
    ic = new X12Parser(true).parse(edi);
  } catch {
    throw new HttpError(400, 'Unparseable 270');
  }
  if (Array.isArray(ic)) throw new HttpError(400, 'One interchange expected');
  const tx = ic.functionalGroups[0]?.transactions[0];
  const v = (seg: { elements: Array<{ value: string }> }, n: number) => seg.elements[n - 1]?.value ?? '';
  if (!tx || v(tx.header, 1) !== '270') throw new HttpError(400, 'Not a 270');
  const seg = (tag: string, first?: string) => tx.segments.find((s) => s.tag === tag && (first === undefined || v(s, 1) === first));
  const il = seg('NM1', 'IL');
  const trn = seg('TRN');
  if (!il || !trn) throw new HttpError(400, '270 without subscriber or trace');
  return {
    trn: v(trn, 2), memberId: v(il, 9), lastName: v(il, 3),
    serviceTypes: tx.segments.filter((s) => s.tag === 'EQ').map((s) => v(s, 1)),
    senderId: v(ic.header, 6).trim(), receiverId: v(ic.header, 8).trim(),
  };
}

function build271(q: Inquiry, control: number, now = new Date()): string {
  const ic = new X12Interchange('~', '*');
  const pad = (s: string) => s.padEnd(15, ' ');
  const ctl = String(control).padStart(9, '0');
  ic.setHeader(['00', ' '.repeat(10), '00', ' '.repeat(10), 'ZZ', pad(q.receiverId), 'ZZ', pad(q.senderId), d8(now).slice(2), hm(now), '^', '00501', ctl, '0', 'T', ':']);
  const g = ic.addFunctionalGroup();
  g.setHeader(['HB', q.receiverId, q.senderId, d8(now), hm(now), String(control), 'X', '005010X279A1']);
  const tx = g.addTransaction();
  tx.setHeader(['271', String(control % 10000).padStart(4, '0'), '005010X279A1']);
  tx.addSegment('BHT', ['0022', '11', q.trn, d8(now), hm(now)]);
  tx.addSegment('HL', ['1', '', '20', '1']);
  tx.addSegment('NM1', ['PR', '2', 'SANDBOX PAYER', '', '', '', '', 'PI', 'SANDBOXPAYER']);
  tx.addSegment('HL', ['2', '1', '21', '1']);
  tx.addSegment('NM1', ['1P', '2', 'SANDBOX HOSPITAL', '', '', '', '', 'XX', '1234567893']);
  tx.addSegment('HL', ['3', '2', '22', '0']);
  tx.addSegment('TRN', ['2', q.trn, '9999999999']);
  tx.addSegment('NM1', ['IL', '1', q.lastName, '', '', '', '', 'MI', q.memberId]);
  if (q.memberId.startsWith('M-ACTIVE')) {
    for (const st of q.serviceTypes) tx.addSegment('EB', ['1', 'IND', st, 'PR', 'SANDBOX GOLD PPO']);
  } else if (q.memberId.startsWith('M-INACTIVE')) {
    tx.addSegment('EB', ['6', 'IND', '30']);
  } else {
    tx.addSegment('AAA', ['N', '', '75', 'C']);
  }
  return ic.toString();
}

function claimResponse(id: string, claim: Record<string, any>, code: string) {
  return {
    resourceType: 'ClaimResponse', id, status: 'active', type: claim.type, use: 'preauthorization',
    patient: claim.patient, created: new Date().toISOString(), insurer: claim.insurer ?? { display: 'Sandbox payer' },
    outcome: code === 'A4' ? 'queued' : 'complete',
    ...(code === 'A1' ? { preAuthRef: `PA-${id}` } : {}),
    extension: [{ url: REVIEW_ACTION_URL, extension: [{ url: 'code', valueCodeableConcept: { coding: [{ system: 'https://codesystem.x12.org/005010/306', code }] } }] }],
  };
}

export async function startPayer(opts: ListenOpts & { decisionDelayMs?: number } = {}): Promise<UpstreamServer> {
  const ids = counter('cr-');
  let controls = 0;
  const decisions = new Map<string, { claim: Record<string, any>; decideAt: number }>();
  const delay = opts.decisionDelayMs ?? 2000;
  return startUpstream({
    name: 'payer',
    reset: () => { ids.reset(); decisions.clear(); controls = 0; },
    routes: [
      ['POST', '/x12/270', (ctx) => {
        const env = ctx.json();
        if (env.PayloadType !== 'X12_270_Request_005010X279A1' || typeof env.Payload !== 'string') throw new HttpError(400, 'Expected a CORE envelope with an X12 270 payload');
        const q = readInquiry(env.Payload);
        return reply(200, { PayloadType: 'X12_271_Response_005010X279A1', ProcessingMode: 'RealTime', PayloadID: env.PayloadID, TimeStamp: new Date().toISOString(), SenderID: q.receiverId, ReceiverID: q.senderId, CORERuleVersion: '2.2.0', ErrorCode: 'Success', Payload: build271(q, ++controls) });
      }],
      ['POST', '/pas/Claim/$submit', (ctx) => {
        const bundle = ctx.json();
        const claim = bundle?.entry?.[0]?.resource;
        if (claim?.resourceType !== 'Claim') throw new HttpError(400, 'Expected a Bundle whose first entry is a Claim');
        const service = claim.item?.[0]?.productOrService?.coding?.[0]?.code;
        const id = ids.next();
        const code = service === PENDED_CODE ? 'A4' : service === DENIED_CODE ? 'A3' : 'A1';
        if (code === 'A4') decisions.set(id, { claim, decideAt: Date.now() + delay });
        return reply(200, { resourceType: 'Bundle', type: 'collection', timestamp: new Date().toISOString(), entry: [{ fullUrl: `${ctx.baseUrl}/pas/ClaimResponse/${id}`, resource: claimResponse(id, claim, code) }] });
      }],
      ['GET', '/pas/ClaimResponse/:id', (ctx) => {
        const d = decisions.get(ctx.params.id);
        if (!d) throw new HttpError(404, 'Unknown ClaimResponse');
        return reply(200, claimResponse(ctx.params.id, d.claim, Date.now() >= d.decideAt ? 'A1' : 'A4'));
      }],
    ],
  }, opts);
}
