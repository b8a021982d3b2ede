/**
 * `mode: shadow` on any policy (Envoy RBAC's shadow_rules, Istio's dry-run): the policy evaluates on every
 * request, its refusals and removals are recorded (trace entry `would-deny` / `would-modify`, audit, metric
 * hcgw_shadow_decisions_total{policy,reason}) and not enforced. How a security team tries a new rule on live
 * traffic before it bites.
 *
 * What stays enforced: errors that are not a decision about the caller (5xx: the policy could not evaluate)
 * still end the request — fail closed. A policy that provides something to later ones (jwt's principal)
 * provides nothing when it would deny, so the later ones refuse on their own if they need it.
 */
import type { Counter } from 'prom-client';
import { toGatewayError } from './errors.ts';
import type { Exchange, PolicyDecision, PolicyHandler, ResponseBody } from './types.ts';

export const POLICY_MODES = ['enforce', 'shadow'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

type ShadowCounter = Pick<Counter<'policy' | 'reason'>, 'inc'>;

/** Decisions the inner handler pushed while in shadow become would-*: nothing they say was enforced. */
function relabel(ex: Exchange, from: number): void {
  for (let i = from; i < ex.decisions.length; i++) {
    const d = ex.decisions[i];
    if (d.outcome === 'modify' || d.outcome === 'deny') ex.decisions[i] = { ...d, outcome: d.outcome === 'deny' ? 'would-deny' : 'would-modify' };
  }
}

export function shadowHandler(name: string, inner: PolicyHandler, counter: ShadowCounter): PolicyHandler {
  const record = (ex: Exchange, outcome: PolicyDecision['outcome'], reason: string) => {
    ex.decisions.push({ policy: name, outcome, reason });
    counter.inc({ policy: name, reason });
  };
  /** Exchanges this policy would have ended in its request phase: its response phase would never have run. */
  const ended = new WeakSet<Exchange>();
  const wouldDeny = (ex: Exchange, err: unknown, from: number) => {
    const ge = toGatewayError(err);
    if (ge.status >= 500) throw ge;
    relabel(ex, from);
    record(ex, 'would-deny', ge.reason ?? ge.code);
    ended.add(ex);
  };
  const handler: PolicyHandler = {
    needsResponseBody: inner.needsResponseBody,
    needsRequestBody: inner.needsRequestBody,
    onLog: inner.onLog?.bind(inner),
    close: inner.close?.bind(inner),
  };
  if (inner.onRequest) {
    const run = inner.onRequest.bind(inner);
    handler.onRequest = async function shadowRequest(ex) {
      const from = ex.decisions.length;
      try {
        await run(ex);
        relabel(ex, from);
      } catch (err) {
        wouldDeny(ex, err, from);
      }
    };
  }
  if (inner.onResponse) {
    const run = inner.onResponse.bind(inner);
    handler.onResponse = async function shadowResponse(ex, response) {
      if (ended.has(ex)) return;
      // The filter works on a copy; the client gets the body as it was, the trace says what would have gone.
      const copy: ResponseBody = { status: response.status, headers: { ...response.headers }, body: structuredClone(response.body) };
      const from = ex.decisions.length;
      try {
        await run(ex, copy);
        relabel(ex, from);
        for (const d of ex.decisions.slice(from)) if (d.outcome === 'would-modify') counter.inc({ policy: name, reason: d.reason ?? 'modified' });
      } catch (err) {
        wouldDeny(ex, err, from);
      }
    };
  }
  return handler;
}
