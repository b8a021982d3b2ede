import x12 from 'node-x12';

const { X12Parser } = x12;

/** One EB (eligibility or benefit information) segment of a 271, by its meaning. */
export interface Benefit {
  /** EB01: 1 active coverage, 6 inactive, I non-covered, … */
  code: string;
  serviceTypes: string[];
  insuranceType?: string;
  planDescription?: string;
}

export interface Rejection {
  /** AAA03 reject reason code (72 invalid member id, 75 subscriber not found, 42 unable to respond…). */
  reason: string;
  /** AAA04 follow-up action code (C please correct and resubmit, R resubmission allowed, N not allowed…). */
  followUp?: string;
  /** Segment loop it came from: PR payer, 1P provider, IL subscriber. */
  level: string;
}

export interface Parsed271 {
  isa13: string;
  gs06: string;
  st02: string;
  /** TRN02 values echoed back; the inquiry's own trace number must be among them. */
  traces: string[];
  benefits: Benefit[];
  rejections: Rejection[];
}

export class X12ResponseError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'X12ResponseError';
  }
}

/** Reads a 271 with node-x12's strict parser; anything that is not one 271 transaction is refused. */
export function parse271(edi: string): Parsed271 {
  let ic;
  try {
    ic = new X12Parser(true).parse(edi.trim());
  } catch {
    throw new X12ResponseError('unparseable-271');
  }
  if (Array.isArray(ic)) throw new X12ResponseError('several-interchanges');
  const groups = ic.functionalGroups;
  const tx = groups.length === 1 && groups[0].transactions.length === 1 ? groups[0].transactions[0] : undefined;
  if (!tx) throw new X12ResponseError('not-one-transaction');
  const el = (seg: { elements: Array<{ value: string }> }, n: number) => seg.elements[n - 1]?.value ?? '';
  if (el(tx.header, 1) !== '271') throw new X12ResponseError('not-a-271');
  // node-x12 reads ISA13 as a number (leading zeros lost); the fixed-width ISA is read from the text.
  const isa = edi.trim().slice(0, 106).split(edi.trim()[3]);
  const out: Parsed271 = { isa13: isa[13] ?? el(ic.header, 13), gs06: el(groups[0].header, 6), st02: el(tx.header, 2), traces: [], benefits: [], rejections: [] };
  let level = '';
  for (const seg of tx.segments) {
    switch (seg.tag) {
      case 'NM1':
        level = el(seg, 1);
        break;
      case 'TRN':
        out.traces.push(el(seg, 2));
        break;
      case 'AAA':
        out.rejections.push({ reason: el(seg, 3), followUp: el(seg, 4) || undefined, level });
        break;
      case 'EB':
        out.benefits.push({ code: el(seg, 1), serviceTypes: el(seg, 3).split('^').filter(Boolean), insuranceType: el(seg, 4) || undefined, planDescription: el(seg, 5) || undefined });
        break;
    }
  }
  return out;
}
