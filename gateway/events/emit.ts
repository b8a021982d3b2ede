import { randomUUID } from 'node:crypto';
import type { Logger } from 'winston';
import { compileString, compileValue, readsRoot, type Render, type TemplateScope } from '../targets/template.ts';
import type { Exchange, PolicyHandler, Principal } from '../sdk/types.ts';
import type { EmitConfig } from './config.ts';
import type { CloudEvent, EventPublisher } from './types.ts';

function principalScope(p: Principal | undefined): Record<string, string | undefined> {
  return p ? { subject: p.subject, clientId: p.clientId, issuer: p.issuer, patient: p.patient, fhirUser: p.fhirUser, encounter: p.encounter } : {};
}

function jsonBody(ex: Exchange): unknown {
  if (ex.json !== undefined || !ex.body?.length) return ex.json;
  try {
    return JSON.parse(ex.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/**
 * A route's `emit:` as a log-phase step appended to its chain: after a response with a listed status, the
 * event is built from the request (templates compiled at load) and published. The response has already
 * gone out, so a failed publish is logged and counted, never shown to the client.
 */
export function emitStep(routeId: string, emit: EmitConfig, publisher: EventPublisher | undefined, logger: Logger): { name: string; handler: PolicyHandler } {
  const data = compileValue(emit.data);
  const optional = (t: string | undefined) => (t === undefined ? undefined : compileString(t));
  const patient = optional(emit.patient);
  const partitionkey = optional(emit.partitionkey);
  const attributes = Object.entries(emit.attributes).map(([k, t]) => [k, compileString(t)] as const);
  const renders: Array<Render<unknown>> = [data, ...(patient ? [patient] : []), ...(partitionkey ? [partitionkey] : []), ...attributes.map(([, r]) => r)];
  const readsBody = renders.some((r) => readsRoot(r, 'body'));
  const statuses = new Set(emit.on);
  const text = (r: Render<unknown> | undefined, scope: TemplateScope) => {
    const v = r?.(scope);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const handler: PolicyHandler = {
    needsRequestBody: readsBody,
    async onLog(ex) {
      if (ex.error || ex.status === undefined || !statuses.has(ex.status)) return;
      if (!publisher) return;
      try {
        const scope: TemplateScope = { params: ex.params, query: Object.fromEntries(ex.query), body: readsBody ? jsonBody(ex) : undefined, principal: principalScope(ex.principal), steps: {} };
        const event: CloudEvent = { specversion: '1.0', id: randomUUID(), source: `/routes/${routeId}`, type: emit.type, time: new Date().toISOString(), datacontenttype: 'application/json', data: data(scope) };
        const p = text(patient, scope);
        const k = text(partitionkey, scope);
        if (p) event.patient = p;
        if (k) event.partitionkey = k;
        for (const [name, r] of attributes) {
          const v = text(r, scope);
          if (v !== undefined) event[name] = v;
        }
        await publisher.publish(event);
      } catch (err) {
        logger.error('route event not published', { route: routeId, type: emit.type, requestId: ex.id, error: (err as Error).message });
      }
    },
  };
  return { name: 'emit', handler };
}
