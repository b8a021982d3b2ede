import { randomBytes } from 'node:crypto';
import { BadGateway, GatewayError, GatewayTimeout, ServiceUnavailable, Unprocessable } from '../../sdk/errors.ts';
import type { Exchange } from '../../sdk/types.ts';
import { callUpstream } from '../../upstream/client.ts';
import type { AdapterServices, AdapterTarget } from '../services.ts';
import { fhirJson, readJsonBody } from '../fhir-io.ts';
import { lazyModule } from '../../lib/lazy-module.ts';
import type { ControlNumbers, EligibilityInquiry } from './x270.ts';
import type { Parsed271 } from './x271.ts';

/** The 270/271 codec (node-x12), imported by loadTargetLibraries only when a route uses this adapter. */
const codec = lazyModule('the X12 codec', async () => ({ ...(await import('./x270.ts')), ...(await import('./x271.ts')) }));
export const loadX12Codec = codec.load;

export interface EligibilityTargetConfig {
  adapter: 'x12-eligibility';
  upstream: string;
  path: string;
  budgetMs: number;
  usage: 'T' | 'P';
  sender: { id: string; qualifier: string };
  receiver: { id: string; qualifier: string };
  payer: { name: string; id: string };
  provider: { name: string; npi: string };
  defaultServiceTypes: string[];
}

const party = (what: string) => ({
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  description: what,
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9 ]{1,15}$', description: 'Interchange id (ISA06/08, GS02/03)' },
    qualifier: { type: 'string', pattern: '^[0-9A-Z]{2}$', default: 'ZZ', description: 'ISA id qualifier' },
  },
});

export const eligibilityTargetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['adapter', 'upstream', 'path', 'sender', 'receiver', 'payer', 'provider'],
  properties: {
    adapter: { const: 'x12-eligibility' },
    upstream: { type: 'string', description: 'Clearinghouse / payer upstream (CAQH CORE-style JSON envelope over HTTP)' },
    path: { type: 'string', pattern: '^/', description: 'Path of the real-time 270 endpoint on the upstream' },
    budgetMs: { type: 'integer', minimum: 1, maximum: 60000, default: 20000, description: 'Whole round trip (CAQH CORE: 20 s); beyond it the caller gets 504' },
    usage: { enum: ['T', 'P'], default: 'T', description: 'ISA15 usage indicator: T test, P production' },
    sender: party('The gateway as interchange sender'),
    receiver: party('The clearinghouse or payer as interchange receiver'),
    payer: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'id'],
      properties: { name: { type: 'string', minLength: 1 }, id: { type: 'string', pattern: '^[A-Za-z0-9]{1,80}$', description: 'Payer id (NM109, qualifier PI)' } },
    },
    provider: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'npi'],
      properties: { name: { type: 'string', minLength: 1 }, npi: { type: 'string', pattern: '^[0-9]{10}$', description: 'Information receiver NPI (NM109, qualifier XX)' } },
    },
    defaultServiceTypes: { type: 'array', items: { type: 'string', pattern: '^[A-Z0-9]{1,2}$' }, minItems: 1, default: ['30'], description: 'EQ01 service types when the request names none (30: health benefit plan coverage)' },
  },
} as const;

const SERVICE_TYPE_SYSTEM = 'https://x12.org/codes/service-type-codes';
const AAA_SYSTEM = 'https://x12.org/codes/reject-reason-codes';
const MEMBER_ID = /^[A-Za-z0-9-]{1,80}$/;
/** Counter in the shared store: control numbers stay unique across gateway instances and restarts. */
const CONTROL_KEY = 'legacy:x12:control-number';
const CONTROL_TTL_MS = 400 * 24 * 3600 * 1000;

type Json = Record<string, any>;

/**
 * FHIR CoverageEligibilityRequest → the inquiry's fields. The subscriber comes from the contained Patient
 * and Coverage the request references; anything missing is a 422, never a guessed 270.
 */
function inquiryOf(req: Json, cfg: EligibilityTargetConfig): { inquiry: EligibilityInquiry; patientId?: string } {
  if (req?.resourceType !== 'CoverageEligibilityRequest') throw new Unprocessable({ detail: 'Expected a CoverageEligibilityRequest', reason: 'not-coverage-eligibility-request' });
  const contained: Json[] = Array.isArray(req.contained) ? req.contained : [];
  const local = (ref: unknown, type: string) => (typeof ref === 'string' && ref.startsWith('#') ? contained.find((r) => r?.resourceType === type && r.id === ref.slice(1)) : undefined);
  const patient = local(req.patient?.reference, 'Patient');
  const coverage = local(req.insurance?.[0]?.coverage?.reference, 'Coverage');
  const memberId = coverage?.subscriberId;
  const lastName = patient?.name?.[0]?.family;
  if (typeof memberId !== 'string' || !MEMBER_ID.test(memberId)) throw new Unprocessable({ detail: 'insurance[0].coverage must reference a contained Coverage with a subscriberId', reason: 'missing-subscriber-id' });
  if (!patient || typeof lastName !== 'string' || !lastName.trim()) throw new Unprocessable({ detail: 'patient must reference a contained Patient with a family name', reason: 'missing-subscriber-name' });
  const birthDate = typeof patient.birthDate === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(patient.birthDate) ? patient.birthDate : undefined;
  const codes = (Array.isArray(req.item) ? req.item : []).flatMap((i: Json) => (i?.category?.coding ?? []).filter((c: Json) => c?.system === SERVICE_TYPE_SYSTEM).map((c: Json) => String(c.code)));
  if (codes.some((c: string) => !/^[A-Z0-9]{1,2}$/.test(c))) throw new Unprocessable({ detail: 'Unknown X12 service type code', reason: 'bad-service-type' });
  const identifier = patient.identifier?.[0]?.value;
  return {
    inquiry: {
      sender: cfg.sender,
      receiver: cfg.receiver,
      payer: cfg.payer,
      provider: cfg.provider,
      usage: cfg.usage,
      subscriber: { memberId, lastName, firstName: patient.name[0].given?.[0], birthDate },
      serviceTypes: codes.length ? [...new Set<string>(codes)] : cfg.defaultServiceTypes,
    },
    patientId: typeof identifier === 'string' ? identifier : typeof patient.id === 'string' ? patient.id : undefined,
  };
}

function outcomeOf(parsed: Parsed271): Json {
  return {
    resourceType: 'OperationOutcome',
    issue: parsed.rejections.map((r) => ({
      severity: 'error',
      code: r.reason === '42' || r.reason === '79' || r.reason === '80' ? 'transient' : 'processing',
      details: { coding: [{ system: AAA_SYSTEM, code: r.reason }], text: `X12 AAA reject reason ${r.reason} (${r.level === 'PR' ? 'payer' : r.level === '1P' ? 'provider' : 'subscriber'} level)` },
      ...(r.followUp ? { diagnostics: `follow-up action ${r.followUp}` } : {}),
    })),
  };
}

function responseOf(req: Json, parsed: Parsed271, trace: string, requested: string[]): Json {
  const active = parsed.benefits.some((b) => b.code === '1');
  const plan = parsed.benefits.find((b) => b.planDescription)?.planDescription;
  const items = parsed.benefits
    .filter((b) => b.serviceTypes.some((s) => requested.includes(s)))
    .map((b) => ({
      category: { coding: b.serviceTypes.map((code) => ({ system: SERVICE_TYPE_SYSTEM, code })) },
      ...(b.code === 'I' ? { excluded: true } : {}),
      ...(b.planDescription ? { description: b.planDescription } : {}),
      benefit: [{ type: { coding: [{ system: 'https://x12.org/codes/eligibility-or-benefit-information', code: b.code }] } }],
    }));
  return {
    resourceType: 'CoverageEligibilityResponse',
    status: 'active',
    identifier: [{ system: 'urn:x12:trn', value: trace }],
    purpose: Array.isArray(req.purpose) && req.purpose.length ? req.purpose : ['benefits'],
    patient: req.patient,
    created: new Date().toISOString(),
    request: { identifier: { system: 'urn:x12:trn', value: trace } },
    outcome: 'complete',
    insurer: req.insurer ?? { display: plan },
    insurance: [{ coverage: req.insurance?.[0]?.coverage, inforce: active, ...(items.length ? { item: items } : {}) }],
    ...(Array.isArray(req.contained) ? { contained: req.contained } : {}),
  };
}

/** ISA13 (9 digits), GS06, ST02 (4+ digits) from one counter; TRN02 random (it travels to the payer). */
async function controlNumbers(services: AdapterServices): Promise<ControlNumbers> {
  let n: number;
  try {
    n = (await services.store.incr(CONTROL_KEY, CONTROL_TTL_MS)).count % 1_000_000_000 || 1;
  } catch {
    throw new ServiceUnavailable({ detail: 'Control numbers cannot be assigned now', reason: 'store-unavailable' });
  }
  return { isa13: String(n).padStart(9, '0'), gs06: String(n), st02: String(n % 10000).padStart(4, '0'), trn02: randomBytes(10).toString('hex').toUpperCase() };
}

/**
 * `POST …/CoverageEligibilityRequest/$submit`: FHIR in, X12 270 to the payer, 271 back to FHIR. The whole
 * round trip has one budget; every call is audited with its control numbers, whatever its outcome.
 */
export function createEligibilityTarget(cfg: EligibilityTargetConfig, services: AdapterServices): AdapterTarget {
  const { build270, parse271, X12ResponseError } = codec.get();
  const upstream = services.upstream(cfg.upstream);
  return {
    kind: 'x12-eligibility',
    prepare(ex) {
      ex.upstreamPath = cfg.path;
      ex.upstream.name = upstream.name;
    },
    async handle(ex: Exchange) {
      const req = readJsonBody(ex) as Json;
      const { inquiry, patientId } = inquiryOf(req, cfg);
      const control = await controlNumbers(services);
      const started = performance.now();
      let parsed: Parsed271 | undefined;
      let failure: GatewayError | undefined;
      try {
        const edi = build270(inquiry, control);
        const res = await callUpstream(
          upstream,
          {
            method: 'POST',
            path: cfg.path,
            timeoutMs: cfg.budgetMs,
            signal: AbortSignal.timeout(cfg.budgetMs),
            // CAQH CORE connectivity envelope fields, carried as JSON.
            body: { PayloadType: 'X12_270_Request_005010X279A1', ProcessingMode: 'RealTime', PayloadID: control.trn02, TimeStamp: new Date().toISOString(), SenderID: cfg.sender.id, ReceiverID: cfg.receiver.id, CORERuleVersion: '2.2.0', Payload: edi },
          },
          ex,
          services.metrics,
        );
        ex.upstream.status = res.status;
        const payload = (res.body as Json | null)?.Payload;
        if (res.status !== 200 || typeof payload !== 'string') throw new BadGateway({ detail: 'The payer did not return a 271', reason: 'no-271' });
        parsed = parse271(payload);
        if (!parsed.traces.includes(control.trn02)) throw new BadGateway({ detail: 'The 271 does not answer this inquiry', reason: 'trace-mismatch' });
      } catch (err) {
        failure =
          err instanceof X12ResponseError
            ? new BadGateway({ detail: 'The payer returned an unreadable 271', reason: err.reason })
            : err instanceof GatewayError && (err.code === GatewayTimeout.code || err.reason === 'aborted')
              ? new GatewayTimeout({ detail: `No 271 within ${cfg.budgetMs} ms`, reason: 'eligibility-budget', extensions: { trace: control.trn02 } })
              : err instanceof GatewayError
                ? err
                : new BadGateway({ reason: 'payer-call-failed' });
      }
      const latencyMs = Math.round((performance.now() - started) * 10) / 10;
      ex.upstream.latencyMs = latencyMs;
      const rejected = Boolean(parsed?.rejections.length);
      services.auditor.write({
        type: 'x12',
        subtype: '270/271',
        action: 'E',
        outcome: failure ? { code: '8', reason: failure.reason ?? failure.code } : { code: rejected ? '4' : '0', ...(rejected ? { reason: `AAA ${parsed!.rejections.map((r) => r.reason).join(',')}` } : {}) },
        agent: { clientId: ex.principal?.clientId, issuer: ex.principal?.issuer },
        entity: {
          route: ex.route.id,
          upstream: upstream.name,
          control: { isa13: control.isa13, gs06: control.gs06, st02: control.st02, trn02: control.trn02 },
          ...(parsed ? { response: { isa13: parsed.isa13, gs06: parsed.gs06, st02: parsed.st02 }, coverage: parsed.benefits.some((b) => b.code === '1') ? 'active' : 'inactive' } : {}),
          ...(patientId ? { patientHashes: [services.auditor.hash(patientId)] } : {}),
        },
        latencyMs,
        requestId: ex.id,
      });
      if (failure) throw failure;
      const body = rejected ? outcomeOf(parsed!) : responseOf(req, parsed!, control.trn02, inquiry.serviceTypes);
      return { response: { status: rejected ? 422 : 200, headers: fhirJson(), body } };
    },
  };
}
