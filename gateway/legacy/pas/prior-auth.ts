import { compile as compilePath } from 'path-to-regexp';
import { BadGateway, GatewayError, GatewayTimeout, Unprocessable } from '../../sdk/errors.ts';
import type { Exchange } from '../../sdk/types.ts';
import { callUpstream } from '../../upstream/client.ts';
import type { AdapterServices, AdapterTarget } from '../services.ts';
import { fhirJson, readJsonBody } from '../fhir-io.ts';
import { EventRefused } from '../../events/schemas.ts';

export interface PriorAuthTargetConfig {
  adapter: 'pas';
  upstream: string;
  path: string;
  statusPath: string;
  budgetMs: number;
  pollIntervalMs: number;
  pollForMs: number;
}

export const priorAuthTargetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['adapter', 'upstream', 'path', 'statusPath'],
  properties: {
    adapter: { const: 'pas' },
    upstream: { type: 'string', description: 'Payer upstream speaking Da Vinci PAS (FHIR)' },
    path: { type: 'string', pattern: '^/', description: "Payer's Claim/$submit path" },
    statusPath: { type: 'string', pattern: '^/.*:id', description: 'Where a pended ClaimResponse is read again (`:id` is its id), until the payer decides' },
    budgetMs: { type: 'integer', minimum: 1, maximum: 60000, default: 15000, description: 'Budget of the $submit call (PAS asks for an answer within 15 s)' },
    pollIntervalMs: { type: 'integer', minimum: 10, maximum: 3600000, default: 5000, description: 'How often a pended authorization is asked about' },
    pollForMs: { type: 'integer', minimum: 100, maximum: 2592000000, default: 86400000, description: 'How long a pended authorization is followed before the gateway gives up (audited as expired)' },
  },
} as const;

export type Decision = 'approved' | 'denied' | 'pended';

type Json = Record<string, any>;

/** X12 306 review action codes (PAS extension-reviewAction) → the decision the report counts. */
const DECISION_OF: Record<string, Decision> = { A1: 'approved', A2: 'approved', A6: 'approved', A3: 'denied', A4: 'pended' };
const REVIEW_ACTION = /extension-reviewAction$/;

/** The first review action code anywhere in the ClaimResponse (top level or an item's adjudication). */
function reviewActionOf(node: unknown): string | undefined {
  if (Array.isArray(node)) {
    for (const n of node) {
      const found = reviewActionOf(n);
      if (found) return found;
    }
    return undefined;
  }
  if (!node || typeof node !== 'object') return undefined;
  const o = node as Json;
  if (typeof o.url === 'string' && REVIEW_ACTION.test(o.url)) {
    const code = (o.extension ?? []).find((e: Json) => e?.url === 'code')?.valueCodeableConcept?.coding?.[0]?.code;
    if (typeof code === 'string') return code;
  }
  for (const key of ['extension', 'item', 'adjudication']) {
    const found = reviewActionOf(o[key]);
    if (found) return found;
  }
  return undefined;
}

function claimResponseOf(body: unknown): Json | undefined {
  const b = body as Json | null;
  if (b?.resourceType === 'ClaimResponse') return b;
  if (b?.resourceType === 'Bundle') return (b.entry ?? []).map((e: Json) => e?.resource).find((r: Json) => r?.resourceType === 'ClaimResponse');
  return undefined;
}

function claimOf(body: unknown): Json {
  const b = body as Json | null;
  const claim = b?.resourceType === 'Bundle' ? b.entry?.[0]?.resource : undefined;
  if (claim?.resourceType !== 'Claim' || claim.use !== 'preauthorization') {
    throw new Unprocessable({ detail: 'Expected a PAS request Bundle whose first entry is a Claim with use "preauthorization"', reason: 'not-pas-bundle' });
  }
  return claim;
}

const patientIdOf = (claim: Json) => (typeof claim.patient?.reference === 'string' ? claim.patient.reference.replace(/^.*Patient\//, '') : undefined);

/**
 * Da Vinci PAS-shaped `Claim/$submit`: forwards the request Bundle to the payer, answers with its
 * ClaimResponse, and for a pended one keeps asking the payer until it decides; the decision is then
 * published (`priorauth.decided`) and audited with its decision time. Pended follow-ups live in this
 * process (a restart stops following them; documented).
 */
export function createPriorAuthTarget(cfg: PriorAuthTargetConfig, services: AdapterServices): AdapterTarget {
  const upstream = services.upstream(cfg.upstream);
  const statusPath = compilePath(cfg.statusPath, { encode: encodeURIComponent });
  const timers = new Set<NodeJS.Timeout>();
  let idle: (() => void) | undefined;

  const audit = (ex: Exchange | undefined, fields: { decision: Decision | 'expired' | 'failed'; decisionMs?: number; subtype: string; claim: Json; responseId?: string; reason?: string; latencyMs?: number }) => {
    const patient = patientIdOf(fields.claim);
    services.auditor.write({
      type: 'pas',
      subtype: fields.subtype,
      action: 'E',
      outcome: { code: fields.decision === 'failed' || fields.decision === 'expired' ? '8' : '0', ...(fields.reason ? { reason: fields.reason } : {}) },
      agent: ex ? { clientId: ex.principal?.clientId, issuer: ex.principal?.issuer } : { system: 'gateway' },
      entity: {
        route: ex?.route.id ?? fields.subtype,
        upstream: upstream.name,
        priorAuth: { decision: fields.decision, ...(fields.decisionMs !== undefined ? { decisionMs: fields.decisionMs } : {}) },
        ...(fields.responseId ? { claimResponseHash: services.auditor.hash(fields.responseId) } : {}),
        ...(patient ? { patientHashes: [services.auditor.hash(patient)] } : {}),
      },
      ...(fields.latencyMs !== undefined ? { latencyMs: fields.latencyMs } : {}),
      ...(ex ? { requestId: ex.id } : {}),
    });
  };

  const follow = (routeId: string, claim: Json, responseId: string, submittedAt: number) => {
    const deadline = submittedAt + cfg.pollForMs;
    const schedule = () => {
      const t = setTimeout(() => {
        void poll().finally(() => {
          timers.delete(t);
          if (!timers.size) idle?.();
        });
      }, cfg.pollIntervalMs);
      t.unref();
      timers.add(t);
    };
    const poll = async () => {
      if (Date.now() > deadline) return audit(undefined, { decision: 'expired', subtype: 'decision', claim, responseId, reason: 'no-decision-in-time' });
      try {
        const res = await callUpstream(upstream, { method: 'GET', path: statusPath({ id: responseId }), timeoutMs: cfg.budgetMs }, undefined, services.metrics);
        const cr = claimResponseOf(res.body);
        const decision = cr ? DECISION_OF[reviewActionOf(cr) ?? ''] : undefined;
        if (res.status !== 200 || !decision || decision === 'pended') return schedule();
        const decisionMs = Date.now() - submittedAt;
        const patient = patientIdOf(claim);
        // Published before it is audited as decided: a failed publish is retried on the next poll.
        await services.publisher!.publish({
          specversion: '1.0',
          id: `pas:${responseId}:decision`,
          source: `/routes/${routeId}`,
          type: 'priorauth.decided',
          time: new Date().toISOString(),
          datacontenttype: 'application/json',
          dataschema: 'urn:hcgw:schema:priorauth.decided:1',
          subject: `ClaimResponse/${responseId}`,
          data: { decision, decisionMs, claimResponse: cr },
          partitionkey: responseId,
          ...(patient ? { patient } : {}),
        });
        audit(undefined, { decision, decisionMs, subtype: 'decision', claim, responseId });
      } catch (err) {
        // A decision the backbone refuses (schema) would be refused on every poll: audit it and stop.
        if (err instanceof EventRefused) return audit(undefined, { decision: 'failed', subtype: 'decision', claim, responseId, reason: `event-refused:${err.reason}` });
        services.logger.warn('pas: pended authorization check failed; will retry', { upstream: upstream.name, error: (err as Error).message });
        schedule();
      }
    };
    schedule();
  };

  return {
    kind: 'pas',
    prepare(ex) {
      ex.upstreamPath = cfg.path;
      ex.upstream.name = upstream.name;
    },
    async handle(ex) {
      const bundle = readJsonBody(ex);
      const claim = claimOf(bundle);
      const submittedAt = Date.now();
      const started = performance.now();
      let res;
      try {
        res = await callUpstream(upstream, { method: 'POST', path: cfg.path, body: bundle, timeoutMs: cfg.budgetMs, signal: AbortSignal.timeout(cfg.budgetMs), headers: { 'content-type': 'application/fhir+json' } }, ex, services.metrics);
      } catch (err) {
        const ge = err instanceof GatewayError && err.reason === 'aborted' ? new GatewayTimeout({ reason: 'pas-budget' }) : err instanceof GatewayError ? err : new BadGateway({ reason: 'payer-call-failed' });
        audit(ex, { decision: 'failed', subtype: 'submit', claim, reason: ge.reason ?? ge.code });
        throw ge;
      }
      const latencyMs = Math.round((performance.now() - started) * 10) / 10;
      ex.upstream.status = res.status;
      ex.upstream.latencyMs = latencyMs;
      const cr = res.status === 200 ? claimResponseOf(res.body) : undefined;
      const decision = cr ? DECISION_OF[reviewActionOf(cr) ?? ''] : undefined;
      const responseId = typeof cr?.id === 'string' ? cr.id : undefined;
      // Fail closed: an answer whose decision cannot be read is not passed on as if it were one.
      if (!cr || !decision || !responseId || (decision === 'pended' && !services.publisher)) {
        audit(ex, { decision: 'failed', subtype: 'submit', claim, reason: !services.publisher && decision === 'pended' ? 'no-event-log' : 'unreadable-claim-response', latencyMs });
        throw new BadGateway({ detail: 'The payer answer carries no readable decision', reason: 'unreadable-claim-response' });
      }
      audit(ex, { decision, subtype: 'submit', claim, responseId, latencyMs, ...(decision === 'pended' ? {} : { decisionMs: Date.now() - submittedAt }) });
      if (decision === 'pended') follow(ex.route.id, claim, responseId, submittedAt);
      return { response: { status: 200, headers: fhirJson(), body: res.body } };
    },
    // A retired config keeps following its pended claims (a reload must not lose a decision); the
    // adapter releases its audit lease once they are all decided or expired.
    idle: () => (timers.size ? new Promise<void>((r) => (idle = r)) : Promise.resolve()),
  };
}
