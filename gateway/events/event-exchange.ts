import type { IncomingMessage, ServerResponse } from 'node:http';
import { createExchange } from '../pipeline/exchange.ts';
import { runLogPhase, runRequestPhase, runResponsePhase } from '../pipeline/chain.ts';
import { toGatewayError, type GatewayError } from '../sdk/errors.ts';
import type { CompiledChain, CompiledRoute, Exchange, Principal, ResponseBody } from '../sdk/types.ts';
import type { Logger } from 'winston';
import type { SubscriptionConfig } from './config.ts';
import type { StoredEvent } from './types.ts';

/** What the subscription's policy chain made of one event. */
export type ChainOutcome = { kind: 'deliver'; data: unknown; ex: Exchange } | { kind: 'denied'; error: GatewayError; ex: Exchange } | { kind: 'retry'; error: GatewayError; ex: Exchange };

/** Statuses a policy answers with when it may say yes later (rate limit, consent source down). */
const TRANSIENT = new Set([429, 502, 503, 504]);

/**
 * The route a subscription's policies see: a FHIR read of the event's resource type by the subscriber, so
 * minimize, consent, patient-compartment and rate-limit run unchanged, with the event data as the response.
 */
export function subscriptionRoute(sub: SubscriptionConfig, chain: CompiledChain, policyNames: string[]): CompiledRoute {
  return Object.freeze({
    id: `subscription:${sub.id}`,
    layer: 'event' as CompiledRoute['layer'],
    methods: ['GET'],
    path: `/events/subscriptions/${sub.id}`,
    fhir: sub.fhir ? { resourceType: sub.fhir.resourceType, interaction: 'read' as const } : undefined,
    targetConfig: { route: sub.id },
    chain,
    target: { kind: 'event-delivery', handle: () => Promise.reject(new Error('subscriptions have no target')) },
    policyNames,
  });
}

function principalOf(sub: SubscriptionConfig): Principal {
  const s = sub.subscriber;
  const claims: Record<string, unknown> = { ...s.claims, sub: s.subject, scope: s.scopes.join(' ') };
  if (s.purposeOfUse) claims.purpose_of_use = s.purposeOfUse;
  return { issuer: 'urn:hcgw:subscriptions', issuerName: 'subscriptions', subject: s.subject, clientId: s.clientId, scopes: s.scopes, patient: s.patient, fhirUser: s.fhirUser, claims };
}

/** A request-like object: only headers and method are read by policies on the request phase. */
function fakeRequest(sub: SubscriptionConfig): IncomingMessage {
  const headers: Record<string, string> = {};
  if (sub.subscriber.purposeOfUse) headers['x-purpose-of-use'] = sub.subscriber.purposeOfUse;
  return { headers, method: 'GET', url: `/events/subscriptions/${sub.id}`, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
}

/** Runs request then response phase over one event for one subscriber; the data is deep-copied first. */
export async function runSubscriptionChain(sub: SubscriptionConfig, route: CompiledRoute, stored: StoredEvent): Promise<ChainOutcome> {
  const ex = createExchange({
    id: stored.event.id,
    traceparent: `00-${'0'.repeat(31)}1-${'0'.repeat(15)}1-01`,
    req: fakeRequest(sub),
    // Audited only once the attempt has its outcome (auditAttempt): complete, so the AuditEvent outcome
    // follows its status (0/4/8) instead of 12, "response not completed".
    res: { headersSent: false, writableFinished: true, setHeader() {}, getHeader() {} } as unknown as ServerResponse,
    route,
    params: stored.event.patient ? { patient: stored.event.patient } : {},
    rawQuery: '',
    ip: '127.0.0.1',
  });
  ex.principal = principalOf(sub);
  ex.upstreamPath = route.path;
  const response: ResponseBody = { status: 200, headers: {}, body: structuredClone(stored.event.data) };
  try {
    await runRequestPhase(route.chain, ex);
    await runResponsePhase(route.chain, ex, response);
  } catch (err) {
    const error = toGatewayError(err);
    ex.error = error;
    ex.status = error.status;
    return TRANSIENT.has(error.status) ? { kind: 'retry', error, ex } : { kind: 'denied', error, ex };
  }
  return { kind: 'deliver', data: response.body, ex };
}

/** One audit record (through the chain's log phase: the `audit` policy) per delivery attempt outcome. */
export async function auditAttempt(ex: Exchange, status: number, logger: Logger, error?: string): Promise<void> {
  ex.status = status;
  ex.upstream = { name: ex.route.id, status, error };
  await runLogPhase(ex.route.chain, ex, logger);
}
