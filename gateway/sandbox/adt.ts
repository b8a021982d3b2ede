/**
 * Synthetic ADT messages for the sandbox (`hcgw sandbox send-adt`) and the tests. Patients and encounters
 * follow the sandbox's FHIR seed (p1…p5, e-<patient>-<n>); names are the seed's fake "-Zyx" names.
 */
export type AdtTrigger = 'A01' | 'A02' | 'A03' | 'A04' | 'A08' | 'A40';

export interface AdtOptions {
  encounter?: string;
  patient?: string;
  /** MSH-10; a fresh one per call when absent. */
  controlId?: string;
  facility?: string;
  application?: string;
  /** A40: the patient merged into `patient`. */
  mergedPatient?: string;
  at?: Date;
}

const ts = (d: Date) => d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
const CLASS_OF: Record<AdtTrigger, string> = { A01: 'I', A02: 'I', A03: 'I', A04: 'O', A08: 'I', A40: 'I' };

export const SANDBOX_FACILITY = 'SANDBOXHOSP';

export function sampleAdt(trigger: AdtTrigger, opts: AdtOptions = {}): string {
  const at = opts.at ?? new Date();
  const encounter = opts.encounter ?? 'e-p1-1';
  const patient = opts.patient ?? /^e-(p\d+)-/.exec(encounter)?.[1] ?? 'p1';
  const controlId = opts.controlId ?? `MSG${at.getTime()}${Math.floor(Math.random() * 1000)}`;
  const segs = [
    `MSH|^~\\&|${opts.application ?? 'SANDBOXEHR'}|${opts.facility ?? SANDBOX_FACILITY}|HCGW|HCGW|${ts(at)}||ADT^${trigger}^ADT_${trigger === 'A40' ? 'A39' : 'A01'}|${controlId}|P|2.5.1`,
    `EVN|${trigger}|${ts(at)}`,
    `PID|1||${patient}^^^${opts.facility ?? SANDBOX_FACILITY}^MR||Testerly-Zyx^Alma||19700101|F`,
  ];
  if (trigger === 'A40') segs.push(`MRG|${opts.mergedPatient ?? 'p9'}^^^${opts.facility ?? SANDBOX_FACILITY}^MR`);
  else {
    const pv1 = Array<string>(46).fill('');
    pv1[0] = 'PV1';
    pv1[1] = '1';
    pv1[2] = CLASS_OF[trigger];
    pv1[3] = trigger === 'A02' ? 'W2^202^1' : 'W1^101^1';
    pv1[19] = encounter;
    pv1[44] = '20240115080000';
    if (trigger === 'A03') pv1[45] = ts(at);
    segs.push(pv1.join('|'));
  }
  return segs.join('\r');
}
