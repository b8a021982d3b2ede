/**
 * Synthetic seed data for the sandbox. EVERYTHING HERE IS FAKE: names carry the marker "-Zyx" so a grep
 * of logs/audit output for `Zyx` proves whether PHI-shaped values leaked; SSNs use area 999 (never
 * issued), phones use 555-01xx (reserved for fiction), addresses are in "Faketown, ZZ".
 *
 * Patients (FHIR ids):
 *   p1 Alma Testerly-Zyx    – plain case; also has an INACTIVE Consent (deny research) that must be ignored.
 *   p2 Bruno Quibble-Zyx    – mental-health data: psych Encounters + PHQ-9/GAD-7 Observations labelled
 *                             meta.security PSY (+ confidentiality R). ACTIVE Consent consent-p2-psy denies
 *                             PSY-labelled data to everyone; a nested exception permits the patient (actor
 *                             Patient/p2, role PAT) — R4 nested provisions are exceptions to their parent.
 *   p3 Cora Fakename-Zyx    – ACTIVE Consent consent-p3-hpaymt denies purpose HPAYMT (payment) access to
 *                             Observation (provision.class) with category laboratory (provision.code).
 *   p4 Dax Synthetica-Zyx   – HIV test Observation labelled HIV; no consent (label-based minimization only).
 *   p5 Esme Placeholder-Zyx – AUDIT-C alcohol screening labelled ETH (substance abuse); no consent.
 * Encounters e-<patient>-<n> (2-3 each) carry type, reasonCode, serviceProvider (Organization/org-*) and a
 * clinical note (extension CLINICAL_NOTE_URL + text.div). Observations obs-<patient>-<code>.
 * Billing: one Claim per encounter (clm-<patient>-<n>, with diagnosis codes and `clinicalNotes`), payments
 * for paid claims, one seeded charge. ERP: items, inventory (itm-104 deliberately low: onHand 2), one
 * purchase order, cost centers mapped 1:1 from the serviceProvider organizations.
 */

export const CLINICAL_NOTE_URL = 'http://hcgw.dev/fhir/StructureDefinition/clinical-note';
export const ACT_CODE = 'http://terminology.hl7.org/CodeSystem/v3-ActCode';
export const ACT_REASON = 'http://terminology.hl7.org/CodeSystem/v3-ActReason';
export const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
export const MRN_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5';
export const SSN_SYSTEM = 'http://hl7.org/fhir/sid/us-ssn';
const OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const CPT = 'http://www.ama-assn.org/go/cpt';
const ICD10 = 'http://hl7.org/fhir/sid/icd-10-cm';

export type Resource = { resourceType: string; id: string; [k: string]: any };

/** Security labels as they appear in meta.security. */
export const label = (code: 'PSY' | 'ETH' | 'HIV') => ({ system: ACT_CODE, code, display: { PSY: 'psychiatry information sensitivity', ETH: 'substance abuse information sensitivity', HIV: 'HIV/AIDS information sensitivity' }[code] });
const restricted = { system: CONFIDENTIALITY, code: 'R', display: 'restricted' };
const ref = (r: string) => ({ reference: r });
const cc = (system: string, code: string, display: string) => ({ coding: [{ system, code, display }], text: display });

// ---- patients ----
const people: [id: string, given: string, family: string, gender: string, birthDate: string][] = [
  ['p1', 'Alma', 'Testerly-Zyx', 'female', '1980-04-12'],
  ['p2', 'Bruno', 'Quibble-Zyx', 'male', '1975-09-30'],
  ['p3', 'Cora', 'Fakename-Zyx', 'female', '1992-01-05'],
  ['p4', 'Dax', 'Synthetica-Zyx', 'male', '1988-07-22'],
  ['p5', 'Esme', 'Placeholder-Zyx', 'female', '1948-11-02'],
];

export const PATIENT_IDS = people.map((p) => p[0]);

const patients: Resource[] = people.map(([id, given, family, gender, birthDate], i) => ({
  resourceType: 'Patient', id,
  text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${given} ${family} (synthetic test patient)</div>` },
  identifier: [
    { use: 'usual', type: cc('http://terminology.hl7.org/CodeSystem/v2-0203', 'MR', 'Medical record number'), system: MRN_SYSTEM, value: `MRN-00012345${i + 1}` },
    { use: 'official', type: cc('http://terminology.hl7.org/CodeSystem/v2-0203', 'SS', 'Social Security number'), system: SSN_SYSTEM, value: `999-00-000${i + 1}` },
  ],
  active: true,
  name: [{ use: 'official', family, given: [given] }],
  telecom: [
    { system: 'phone', value: `555-01${String(i + 10)}`, use: 'home' },
    { system: 'email', value: `${given.toLowerCase()}.${family.toLowerCase()}@example.org` },
  ],
  gender, birthDate,
  address: [{ use: 'home', line: [`${100 + i} Synthetic Way`], city: 'Faketown', state: 'ZZ', postalCode: `0000${i + 1}`, country: 'ZZ' }],
}));

const orgs: [id: string, name: string, costCenter: string, department: string][] = [
  ['org-cardio', 'Synthetic Cardiology Clinic', 'cc-cardio', 'Cardiology'],
  ['org-gp', 'Synthetic General Practice', 'cc-gp', 'Primary Care'],
  ['org-psych', 'Synthetic Behavioral Health', 'cc-psych', 'Behavioral Health'],
  ['org-lab', 'Synthetic Laboratory Services', 'cc-lab', 'Laboratory'],
];
const organizations: Resource[] = orgs.map(([id, name]) => ({ resourceType: 'Organization', id, active: true, name }));

const practitioners: Resource[] = [
  ['pr-1', 'Fictional', 'Quill-Zyx'],
  ['pr-2', 'Imaginary', 'Penrose-Zyx'],
].map(([id, given, family]) => ({ resourceType: 'Practitioner', id, name: [{ family, given: [given], prefix: ['Dr.'] }] }));

// ---- encounters (with what billing needs to bill them) ----
interface EncDef {
  id: string; patient: string; date: string; type: [code: string, display: string]; reason: [code: string, display: string];
  org: string; note: string; sensitive?: 'PSY'; cpt: [code: string, display: string, amount: number][]; icd: [code: string, display: string];
  claimStatus: 'paid' | 'submitted' | 'denied';
}

const encDefs: EncDef[] = [
  { id: 'e-p1-1', patient: 'p1', date: '2024-01-15', type: ['11429006', 'Consultation'], reason: ['38341003', 'Hypertensive disorder'], org: 'org-cardio',
    note: 'SYNTHETIC NOTE: BP 148/92 on repeat; lifestyle changes advised. Fictional patient Testerly-Zyx.', cpt: [['99213', 'Office visit, established', 120]], icd: ['I10', 'Essential hypertension'], claimStatus: 'paid' },
  { id: 'e-p1-2', patient: 'p1', date: '2024-03-02', type: ['185347001', 'Laboratory encounter'], reason: ['268547008', 'Screening for diabetes'], org: 'org-lab',
    note: 'SYNTHETIC NOTE: fasting labs drawn, HbA1c borderline.', cpt: [['80053', 'Comprehensive metabolic panel', 45], ['83036', 'Hemoglobin A1c', 30]], icd: ['Z13.1', 'Encounter for screening for diabetes'], claimStatus: 'submitted' },
  { id: 'e-p2-1', patient: 'p2', date: '2024-02-10', type: ['185349003', 'Encounter for check up'], reason: ['84229001', 'Fatigue'], org: 'org-gp',
    note: 'SYNTHETIC NOTE: reports fatigue and low mood for 6 weeks; referred to behavioral health.', cpt: [['99214', 'Office visit, moderate', 160]], icd: ['R53.83', 'Other fatigue'], claimStatus: 'paid' },
  { id: 'e-p2-2', patient: 'p2', date: '2024-02-24', type: ['90526000', 'Psychiatric evaluation'], reason: ['370143000', 'Major depressive disorder'], org: 'org-psych', sensitive: 'PSY',
    note: 'SYNTHETIC PSYCH NOTE: PHQ-9 17, moderately severe depression; no acute risk. Fictional patient Quibble-Zyx.', cpt: [['90792', 'Psychiatric diagnostic evaluation', 250]], icd: ['F33.1', 'Major depressive disorder, recurrent, moderate'], claimStatus: 'paid' },
  { id: 'e-p2-3', patient: 'p2', date: '2024-04-05', type: ['75516001', 'Psychotherapy'], reason: ['370143000', 'Major depressive disorder'], org: 'org-psych', sensitive: 'PSY',
    note: 'SYNTHETIC PSYCH NOTE: CBT session 3; GAD-7 12; discussed sleep hygiene.', cpt: [['90834', 'Psychotherapy, 45 minutes', 160]], icd: ['F33.1', 'Major depressive disorder, recurrent, moderate'], claimStatus: 'submitted' },
  { id: 'e-p3-1', patient: 'p3', date: '2024-01-20', type: ['185349003', 'Encounter for check up'], reason: ['410620009', 'Well adult exam'], org: 'org-gp',
    note: 'SYNTHETIC NOTE: annual exam, pallor noted; CBC and ferritin ordered.', cpt: [['99395', 'Preventive visit, 18-39', 180]], icd: ['Z00.00', 'General adult examination'], claimStatus: 'paid' },
  { id: 'e-p3-2', patient: 'p3', date: '2024-02-05', type: ['185347001', 'Laboratory encounter'], reason: ['271737000', 'Anemia'], org: 'org-lab',
    note: 'SYNTHETIC NOTE: low ferritin confirms iron deficiency.', cpt: [['85025', 'Complete blood count', 25], ['82728', 'Ferritin', 28]], icd: ['D50.9', 'Iron deficiency anemia'], claimStatus: 'denied' },
  { id: 'e-p4-1', patient: 'p4', date: '2024-03-11', type: ['185349003', 'Encounter for check up'], reason: ['171121004', 'Sexually transmitted infection screening'], org: 'org-gp',
    note: 'SYNTHETIC NOTE: routine STI screening requested by patient.', cpt: [['99213', 'Office visit, established', 120]], icd: ['Z11.3', 'Screening for sexually transmitted infections'], claimStatus: 'paid' },
  { id: 'e-p4-2', patient: 'p4', date: '2024-03-25', type: ['185347001', 'Laboratory encounter'], reason: ['171121004', 'Sexually transmitted infection screening'], org: 'org-lab',
    note: 'SYNTHETIC NOTE: HIV 1/2 antibody screen performed.', cpt: [['86703', 'HIV-1/HIV-2 antibody', 35]], icd: ['Z11.4', 'Screening for HIV'], claimStatus: 'submitted' },
  { id: 'e-p5-1', patient: 'p5', date: '2024-01-08', type: ['11429006', 'Consultation'], reason: ['49436004', 'Atrial fibrillation'], org: 'org-cardio',
    note: 'SYNTHETIC NOTE: irregular rhythm on ECG; anticoagulation discussed. Fictional patient Placeholder-Zyx.', cpt: [['99204', 'Office visit, new, moderate', 210], ['93000', 'Electrocardiogram', 40]], icd: ['I48.91', 'Atrial fibrillation'], claimStatus: 'paid' },
  { id: 'e-p5-2', patient: 'p5', date: '2024-02-19', type: ['185349003', 'Encounter for check up'], reason: ['228281002', 'Alcohol use screening'], org: 'org-gp',
    note: 'SYNTHETIC NOTE: AUDIT-C 7, brief intervention delivered.', cpt: [['99408', 'Alcohol/substance screening and intervention', 65]], icd: ['F10.10', 'Alcohol abuse, uncomplicated'], claimStatus: 'submitted' },
];

const encounters: Resource[] = encDefs.map((e) => ({
  resourceType: 'Encounter', id: e.id,
  ...(e.sensitive ? { meta: { security: [label(e.sensitive), restricted] } } : {}),
  text: { status: 'additional', div: `<div xmlns="http://www.w3.org/1999/xhtml">${e.note}</div>` },
  extension: [{ url: CLINICAL_NOTE_URL, valueString: e.note }],
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
  type: [cc(SNOMED, ...e.type)],
  subject: ref(`Patient/${e.patient}`),
  participant: [{ individual: ref(e.sensitive ? 'Practitioner/pr-2' : 'Practitioner/pr-1') }],
  period: { start: `${e.date}T09:00:00Z`, end: `${e.date}T09:40:00Z` },
  reasonCode: [cc(SNOMED, ...e.reason)],
  serviceProvider: ref(`Organization/${e.org}`),
}));

// ---- observations ----
type Cat = 'vital-signs' | 'laboratory' | 'survey' | 'social-history';
const obs = (id: string, enc: string, cat: Cat, code: [string, string], value: Record<string, unknown>, sensitive?: 'PSY' | 'ETH' | 'HIV'): Resource => {
  const e = encDefs.find((d) => d.id === enc)!;
  return {
    resourceType: 'Observation', id,
    ...(sensitive ? { meta: { security: [label(sensitive), restricted] } } : {}),
    status: 'final',
    category: [{ coding: [{ system: OBS_CATEGORY, code: cat }] }],
    code: cc(LOINC, ...code),
    subject: ref(`Patient/${e.patient}`),
    encounter: ref(`Encounter/${enc}`),
    effectiveDateTime: `${e.date}T09:15:00Z`,
    ...value,
  };
};
const qty = (value: number, unit: string, code = unit) => ({ valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code } });

const observations: Resource[] = [
  obs('obs-p1-hr', 'e-p1-1', 'vital-signs', ['8867-4', 'Heart rate'], qty(78, 'beats/minute', '/min')),
  obs('obs-p1-wt', 'e-p1-1', 'vital-signs', ['29463-7', 'Body weight'], qty(71.2, 'kg')),
  obs('obs-p1-glu', 'e-p1-2', 'laboratory', ['2339-0', 'Glucose [Mass/volume] in Blood'], qty(104, 'mg/dL')),
  obs('obs-p1-a1c', 'e-p1-2', 'laboratory', ['4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood'], qty(5.9, '%')),
  obs('obs-p2-hr', 'e-p2-1', 'vital-signs', ['8867-4', 'Heart rate'], qty(66, 'beats/minute', '/min')),
  obs('obs-p2-tsh', 'e-p2-1', 'laboratory', ['3016-3', 'Thyrotropin [Units/volume] in Serum'], qty(2.1, 'mIU/L', 'm[IU]/L')),
  obs('obs-p2-phq9', 'e-p2-2', 'survey', ['44261-6', 'PHQ-9 total score'], { valueInteger: 17 }, 'PSY'),
  obs('obs-p2-gad7', 'e-p2-3', 'survey', ['70274-6', 'GAD-7 total score'], { valueInteger: 12 }, 'PSY'),
  obs('obs-p2-mh', 'e-p2-3', 'social-history', ['11341-5', 'History of Occupation'], { valueString: 'SYNTHETIC: on medical leave for depression' }, 'PSY'),
  obs('obs-p3-hr', 'e-p3-1', 'vital-signs', ['8867-4', 'Heart rate'], qty(88, 'beats/minute', '/min')),
  obs('obs-p3-hgb', 'e-p3-2', 'laboratory', ['718-7', 'Hemoglobin [Mass/volume] in Blood'], qty(10.8, 'g/dL')),
  obs('obs-p3-ferr', 'e-p3-2', 'laboratory', ['2276-4', 'Ferritin [Mass/volume] in Serum'], qty(9, 'ng/mL')),
  obs('obs-p4-wt', 'e-p4-1', 'vital-signs', ['29463-7', 'Body weight'], qty(82.5, 'kg')),
  obs('obs-p4-hiv', 'e-p4-2', 'laboratory', ['75622-1', 'HIV 1 and 2 Ab [Presence] in Serum'], { valueCodeableConcept: cc(SNOMED, '260385009', 'Negative') }, 'HIV'),
  obs('obs-p5-hr', 'e-p5-1', 'vital-signs', ['8867-4', 'Heart rate'], qty(112, 'beats/minute', '/min')),
  obs('obs-p5-inr', 'e-p5-1', 'laboratory', ['6301-6', 'INR in Platelet poor plasma'], qty(1.1, '{INR}')),
  obs('obs-p5-auditc', 'e-p5-2', 'social-history', ['75624-7', 'AUDIT-C total score'], { valueInteger: 7 }, 'ETH'),
];

// ---- consents ----
const consent = (id: string, patient: string, status: string, date: string, provision: Record<string, unknown>): Resource => ({
  resourceType: 'Consent', id, status,
  scope: cc('http://terminology.hl7.org/CodeSystem/consentscope', 'patient-privacy', 'Privacy Consent'),
  category: [cc(LOINC, '59284-0', 'Patient Consent')],
  patient: ref(`Patient/${patient}`),
  dateTime: date,
  organization: [ref('Organization/org-gp')],
  policyRule: cc(ACT_CODE, 'OPTIN', 'opt-in'),
  provision,
});

const consents: Resource[] = [
  consent('consent-p1-research', 'p1', 'inactive', '2019-05-01', {
    type: 'permit', period: { start: '2019-05-01', end: '2021-05-01' },
    provision: [{ type: 'deny', purpose: [{ system: ACT_REASON, code: 'HRESCH', display: 'healthcare research' }] }],
  }),
  consent('consent-p2-psy', 'p2', 'active', '2024-02-24', {
    type: 'permit',
    provision: [{
      type: 'deny',
      securityLabel: [label('PSY')],
      // Exception to the deny: the patient may always see their own PSY data.
      provision: [{ type: 'permit', actor: [{ role: cc('http://terminology.hl7.org/CodeSystem/v3-RoleCode', 'PAT', 'patient'), reference: ref('Patient/p2') }] }],
    }],
  }),
  consent('consent-p3-hpaymt', 'p3', 'active', '2024-01-20', {
    type: 'permit',
    provision: [{
      type: 'deny',
      purpose: [{ system: ACT_REASON, code: 'HPAYMT', display: 'healthcare payment' }],
      class: [{ system: 'http://hl7.org/fhir/resource-types', code: 'Observation' }],
      code: [{ coding: [{ system: OBS_CATEGORY, code: 'laboratory' }] }],
    }],
  }),
];

export const SEED_TIME = '2024-05-01T00:00:00Z';
export const fhirSeed = (): Resource[] => structuredClone([...patients, ...organizations, ...practitioners, ...encounters, ...observations, ...consents]);

// ---- billing ----
const payerOf = (patient: string) => (['p1', 'p3', 'p5'].includes(patient)
  ? { id: 'payer-acme', name: 'Acme Synthetic Health Plan' }
  : { id: 'payer-zyx', name: 'Zyx Mutual Insurance (fictional)' });

export interface Charge { id: string; encounter: string; patient: string; code: string; amount: number; description?: string; createdAt: string }

export const billingSeed = () => {
  const claims = encDefs.map((e) => {
    const total = e.cpt.reduce((s, [, , amount]) => s + amount, 0);
    return {
      id: `clm-${e.id.slice(2)}`,
      patient: `Patient/${e.patient}`,
      encounter: `Encounter/${e.id}`,
      status: e.claimStatus,
      created: `${e.date}T17:00:00Z`,
      payer: payerOf(e.patient),
      provider: `Organization/${e.org}`,
      diagnosis: [{ sequence: 1, system: ICD10, code: e.icd[0], display: e.icd[1] }],
      items: e.cpt.map(([code, display, amount], i) => ({ sequence: i + 1, code: { system: CPT, code, display }, quantity: 1, unitPrice: { value: amount, currency: 'USD' }, net: { value: amount, currency: 'USD' } })),
      total: { value: total, currency: 'USD' },
      clinicalNotes: e.note,
    };
  });
  const payments = claims.filter((c) => c.status === 'paid').map((c, i) => ({
    id: `pay-${i + 1}`, patient: c.patient, claim: c.id, amount: { value: Math.round(c.total.value * 0.8 * 100) / 100, currency: 'USD' },
    date: c.created.slice(0, 10), method: 'insurance', payer: c.payer.id,
  }));
  const charges: Charge[] = [{ id: 'chg-seed-1', encounter: 'Encounter/e-p1-1', patient: 'Patient/p1', code: '36415', description: 'Venipuncture', amount: 12, createdAt: '2024-01-15T10:00:00Z' }];
  return structuredClone({ claims, payments, charges });
};

// ---- ERP ----
export const erpSeed = () => structuredClone({
  items: [
    { id: 'itm-100', sku: 'SYN-SAL-1L', name: 'Saline 0.9% 1L bag (synthetic)', unit: 'bag', unitCost: { value: 1.85, currency: 'USD' }, category: 'consumable' },
    { id: 'itm-101', sku: 'SYN-GLV-100', name: 'Nitrile gloves, box of 100', unit: 'box', unitCost: { value: 7.5, currency: 'USD' }, category: 'ppe' },
    { id: 'itm-102', sku: 'SYN-GLU-50', name: 'Glucose test strips, pack of 50', unit: 'pack', unitCost: { value: 18, currency: 'USD' }, category: 'lab' },
    { id: 'itm-103', sku: 'SYN-A1C-10', name: 'HbA1c test cartridge, pack of 10', unit: 'pack', unitCost: { value: 42, currency: 'USD' }, category: 'lab' },
    { id: 'itm-104', sku: 'SYN-ECG-30', name: 'ECG electrodes, pack of 30', unit: 'pack', unitCost: { value: 9.25, currency: 'USD' }, category: 'cardiology' },
  ],
  inventory: [
    { itemId: 'itm-100', location: 'WH-SYN-1', onHand: 240 },
    { itemId: 'itm-101', location: 'WH-SYN-1', onHand: 55 },
    { itemId: 'itm-102', location: 'LAB-SYN-2', onHand: 30 },
    { itemId: 'itm-103', location: 'LAB-SYN-2', onHand: 12 },
    { itemId: 'itm-104', location: 'CARD-SYN-3', onHand: 2 },
  ],
  purchaseOrders: [
    { id: 'po-5001', status: 'approved', supplier: 'Acme Synthetic Supplies', costCenter: 'cc-lab', lines: [{ itemId: 'itm-102', quantity: 20, unitCost: { value: 18, currency: 'USD' } }], total: { value: 360, currency: 'USD' }, createdAt: '2024-04-02T08:00:00Z' },
  ],
  costCenters: orgs.map(([org, name, id, department]) => ({ id, name: `${department} cost center`, department, organization: `Organization/${org}`, glAccount: `6100-${id.slice(3).toUpperCase()}`, unitName: name })),
  postings: [] as Record<string, unknown>[],
  /** Which organization serves each seeded encounter (the ERP's view of Encounter.serviceProvider). */
  encounterOrg: Object.fromEntries(encDefs.map((e) => [e.id, `Organization/${e.org}`])) as Record<string, string>,
});
