import x12 from 'node-x12';

/**
 * ASC X12 005010X279A1 270 (eligibility inquiry) built with node-x12's object model, so segment counts
 * (SE01), trailers (GE/IEA) and delimiters come from the library rather than string concatenation.
 */
const { X12Interchange } = x12;

export interface Party {
  /** Interchange sender/receiver id (ISA06/ISA08, GS02/GS03). */
  id: string;
  /** ISA05/ISA07 qualifier (ZZ mutually defined, 30 tax id…). */
  qualifier: string;
}

export interface EligibilityInquiry {
  sender: Party;
  receiver: Party;
  payer: { name: string; id: string };
  provider: { name: string; npi: string };
  subscriber: { memberId: string; lastName: string; firstName?: string; birthDate?: string };
  /** X12 service type codes (EQ01), e.g. 30 health benefit plan coverage. */
  serviceTypes: string[];
  /** ISA15: T test, P production. */
  usage: 'T' | 'P';
}

export interface ControlNumbers {
  isa13: string;
  gs06: string;
  st02: string;
  trn02: string;
}

const pad = (v: string, n: number) => v.padEnd(n, ' ').slice(0, n);
const d8 = (d: Date) => d.toISOString().slice(0, 10).replace(/-/g, '');
const hm = (d: Date) => d.toISOString().slice(11, 16).replace(':', '');

/** X12 element values must not contain the delimiters; anything else in a name is dropped. */
export function x12Text(v: string): string {
  return v.replace(/[*~:^\r\n]/g, ' ').trim().toUpperCase();
}

export function build270(q: EligibilityInquiry, control: ControlNumbers, now = new Date()): string {
  const ic = new X12Interchange('~', '*');
  ic.setHeader(['00', pad('', 10), '00', pad('', 10), q.sender.qualifier, pad(q.sender.id, 15), q.receiver.qualifier, pad(q.receiver.id, 15), d8(now).slice(2), hm(now), '^', '00501', control.isa13, '0', q.usage, ':']);
  const group = ic.addFunctionalGroup();
  group.setHeader(['HS', q.sender.id, q.receiver.id, d8(now), hm(now), control.gs06, 'X', '005010X279A1']);
  const tx = group.addTransaction();
  tx.setHeader(['270', control.st02, '005010X279A1']);
  tx.addSegment('BHT', ['0022', '13', control.trn02, d8(now), hm(now)]);
  tx.addSegment('HL', ['1', '', '20', '1']);
  tx.addSegment('NM1', ['PR', '2', x12Text(q.payer.name), '', '', '', '', 'PI', q.payer.id]);
  tx.addSegment('HL', ['2', '1', '21', '1']);
  tx.addSegment('NM1', ['1P', '2', x12Text(q.provider.name), '', '', '', '', 'XX', q.provider.npi]);
  tx.addSegment('HL', ['3', '2', '22', '0']);
  // TRN03: originating company id ("9" + 9 digits); the gateway identifies itself by the provider's NPI.
  tx.addSegment('TRN', ['1', control.trn02, `9${q.provider.npi.slice(0, 9).padStart(9, '0')}`]);
  tx.addSegment('NM1', ['IL', '1', x12Text(q.subscriber.lastName), x12Text(q.subscriber.firstName ?? ''), '', '', '', 'MI', q.subscriber.memberId]);
  if (q.subscriber.birthDate) tx.addSegment('DMG', ['D8', q.subscriber.birthDate.replace(/-/g, '')]);
  tx.addSegment('DTP', ['291', 'D8', d8(now)]);
  for (const st of q.serviceTypes) tx.addSegment('EQ', [st]);
  return ic.toString();
}
