import type { FhirResource } from '../../gateway/lib/fhir-bundle.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';

/**
 * FHIR R4 Consent evaluation (privacy consents). A consent's root provision sets the base rule; each
 * nested provision is an exception to its parent and applies when all of its criteria match (deepest
 * match wins; among sibling exceptions deny wins). Across a patient's active consents deny wins.
 * Criteria understood: period, actor (reference and/or role), purpose, securityLabel, class (resource
 * type), code (any coding of the resource's code, category or type) and data (resource references).
 * `action` is not narrowed: every release through the gateway is a disclosure.
 */
export type Decision = 'permit' | 'deny';

interface Coding {
  system?: string;
  code?: string;
}
interface Concept {
  coding?: Coding[];
}
interface Provision {
  type?: Decision;
  period?: { start?: string; end?: string };
  actor?: Array<{ role?: Concept; reference?: { reference?: string } }>;
  purpose?: Coding[];
  securityLabel?: Coding[];
  class?: Coding[];
  code?: Concept[];
  data?: Array<{ reference?: { reference?: string } }>;
  provision?: Provision[];
}
export interface Consent extends FhirResource {
  status?: string;
  patient?: { reference?: string };
  provision?: Provision;
}

/** Who asks and why, resolved once per request. */
export interface AccessContext {
  purpose?: string;
  /** FHIR references identifying the caller, e.g. `Patient/p2`, `Practitioner/pr-1`. */
  actorRefs: string[];
  /** v3 RoleCode codes of the caller, e.g. PAT, PROV. */
  actorRoles: string[];
  now: number;
}

const list = <T>(v: T[] | undefined): T[] => (Array.isArray(v) ? v : []);
const same = (a: Coding, b: Coding) => a.code !== undefined && a.code === b.code && (!a.system || !b.system || a.system === b.system);
const anySame = (wanted: Coding[], have: Coding[]) => wanted.some((w) => have.some((h) => same(w, h)));
const codingsOf = (v: unknown): Coding[] => (Array.isArray(v) ? v.flatMap(codingsOf) : isPlainObject(v) && Array.isArray(v.coding) ? (v.coding as Coding[]) : []);

function within(period: Provision['period'], now: number): boolean {
  if (!period) return true;
  const start = period.start ? Date.parse(period.start) : -Infinity;
  const end = period.end ? Date.parse(period.end) : Infinity;
  return now >= start && now <= end;
}

/** What a provision can test about one resource, computed once per resource. */
export interface ResourceFacts {
  type: string;
  ref?: string;
  labels: Coding[];
  codes: Coding[];
}

export function factsOf(r: FhirResource): ResourceFacts {
  const meta = isPlainObject(r.meta) ? r.meta : {};
  return {
    type: r.resourceType,
    ref: typeof r.id === 'string' ? `${r.resourceType}/${r.id}` : undefined,
    labels: list(meta.security as Coding[] | undefined),
    codes: [...codingsOf(r.code), ...codingsOf(r.category), ...codingsOf(r.type)],
  };
}

function provisionMatches(p: Provision, who: AccessContext, what: ResourceFacts): boolean {
  if (!within(p.period, who.now)) return false;
  if (p.actor?.length) {
    const actorMatches = p.actor.some((a) => {
      const ref = a.reference?.reference;
      const roles = codingsOf(a.role).map((c) => c.code);
      return (ref === undefined || who.actorRefs.includes(ref)) && (!roles.length || roles.some((r) => r !== undefined && who.actorRoles.includes(r))) && (ref !== undefined || roles.length > 0);
    });
    if (!actorMatches) return false;
  }
  if (p.purpose?.length && !(who.purpose && p.purpose.some((c) => c.code === who.purpose))) return false;
  if (p.securityLabel?.length && !anySame(p.securityLabel, what.labels)) return false;
  if (p.class?.length && !p.class.some((c) => c.code === what.type)) return false;
  if (p.code?.length && !anySame(codingsOf(p.code), what.codes)) return false;
  if (p.data?.length && !p.data.some((d) => d.reference?.reference !== undefined && d.reference.reference === what.ref)) return false;
  return true;
}

function decide(p: Provision, inherited: Decision, who: AccessContext, what: ResourceFacts): Decision | undefined {
  if (!provisionMatches(p, who, what)) return undefined;
  const own = p.type ?? inherited;
  const exceptions = list(p.provision)
    .map((child) => decide(child, own, who, what))
    .filter((d): d is Decision => d !== undefined);
  if (!exceptions.length) return own;
  return exceptions.includes('deny') ? 'deny' : 'permit';
}

/** The decision of one active consent for one resource, or undefined when it does not speak to it. */
export function evaluateConsent(c: Consent, who: AccessContext, what: ResourceFacts): Decision | undefined {
  const root = c.provision;
  if (c.status !== 'active' || !root || typeof root !== 'object') return undefined;
  return decide(root, root.type ?? 'permit', who, what);
}

/** Deny wins across consents; `fallback` applies when none of them speaks to the resource. */
export function evaluateAll(consents: readonly Consent[], who: AccessContext, what: ResourceFacts, fallback: Decision): Decision {
  let permitted = false;
  for (const c of consents) {
    const d = evaluateConsent(c, who, what);
    if (d === 'deny') return 'deny';
    if (d === 'permit') permitted = true;
  }
  return permitted ? 'permit' : fallback;
}
