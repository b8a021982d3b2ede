import type { ConfigIssue } from '../config/errors.ts';
import type { CompiledEvents } from '../events/compile.ts';
import type { RouteConfig } from '../sdk/types.ts';
import { EVENT_TYPE_OF } from './hl7/mapping.ts';
import { EVENT_LOG_FIX } from './runtime.ts';
import type { LegacyConfig } from './schema.ts';

/** The event type a `pas` adapter route publishes when a pended authorization is decided. */
export const PRIOR_AUTH_DECIDED = 'priorauth.decided';

/**
 * `hcgw validate` for the legacy sources: with `events:` configured, every type a listener or adapter can
 * publish needs a declared schema (else the backbone would refuse it at run time and the sender get AR);
 * without it, `legacy.eventLog` is the deprecated fallback (a warning), and no place to publish is an error.
 */
export function checkLegacyEventTypes(
  legacy: LegacyConfig | undefined,
  routes: readonly RouteConfig[],
  events: { configured: boolean; compiled?: CompiledEvents },
  issues: ConfigIssue[],
  warnings: ConfigIssue[],
): void {
  const uses: Array<{ path: string; type: string; what: string }> = [];
  (legacy?.mllp ?? []).forEach((l, li) =>
    (l.events ?? Object.keys(EVENT_TYPE_OF)).forEach((trigger, ti) => uses.push({ path: `legacy.mllp[${li}].events[${ti}]`, type: EVENT_TYPE_OF[trigger as keyof typeof EVENT_TYPE_OF], what: `ADT ${trigger}` })),
  );
  routes.forEach((rc, ri) => {
    if ((rc?.target as { adapter?: unknown } | undefined)?.adapter === 'pas') uses.push({ path: `routes[${ri}].target.adapter`, type: PRIOR_AUTH_DECIDED, what: 'a pended prior authorization' });
  });
  if (events.configured) {
    // An `events:` section that did not compile has its own issues; its schemas cannot be asked.
    for (const u of uses) if (events.compiled && !events.compiled.schemas.has(u.type)) issues.push({ path: u.path, message: `${u.what} publishes "${u.type}", but no schema is declared for it (events.schemas)` });
    if (legacy?.eventLog) warnings.push({ path: 'legacy.eventLog', message: 'is ignored: the legacy adapters publish to the event backbone (`events:`); remove it' });
    return;
  }
  if (legacy?.eventLog) warnings.push({ path: 'legacy.eventLog', message: `is deprecated: ${EVENT_LOG_FIX}` });
  else if (legacy?.mllp.length) issues.push({ path: 'legacy.mllp', message: 'needs an `events:` section (event backbone) to publish to: an ACK must never promise an event that was not stored' });
}
