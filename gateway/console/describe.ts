import type { CompiledGateway } from '../config/compile.ts';

/** The /admin/routes listing (gateway/ops/admin.ts describeRoutes), handed in so the two modules stay acyclic. */
export interface RouteListing {
  config: { version: string; loadedAt: string; routes: number };
  upstreams: string[];
  routes: Array<{ id: string; layer: string; methods: string[]; path: string; policies: string[]; upstreams: string[] }>;
}

/** Keys whose values are never shown, whatever policy they belong to (fail closed: a match hides the value). */
const SECRET_KEY = /secret|token|passw|credential|authorization|cookie|header|apikey|api-key|private|hashkey|signing/i;
const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * A policy's settings as the console shows them: scalars and lists kept, secrets and URLs (which may carry
 * credentials or internal addresses) replaced by a marker, nesting cut at a fixed depth.
 */
export function redactSettings(value: unknown, key = '', depth = 0): unknown {
  if (SECRET_KEY.test(key)) return '[redacted]';
  if (typeof value === 'string') return URL_LIKE.test(value) ? '[url]' : value;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return value;
  if (depth >= 5) return '[…]';
  if (Array.isArray(value)) return value.map((v) => redactSettings(v, '', depth + 1));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactSettings(v, k, depth + 1)]));
  }
  return '[…]';
}

interface MinimizeSelect {
  profile?: unknown;
  when?: { purposeOfUse?: unknown };
}

/** Which minimization profile each purpose of use gets on a route (first match wins, as the policy does). */
function profilesByPurpose(config: unknown): Array<{ purposeOfUse: string[] | 'any'; profile: string; conditions: string[] }> {
  const select = (config as { select?: MinimizeSelect[] } | undefined)?.select;
  if (!Array.isArray(select)) return [];
  return select.map((s) => {
    const when = (s.when ?? {}) as Record<string, unknown>;
    return {
      purposeOfUse: Array.isArray(when.purposeOfUse) ? (when.purposeOfUse as string[]) : 'any',
      profile: String(s.profile),
      conditions: Object.keys(when).filter((k) => k !== 'purposeOfUse'),
    };
  });
}

/**
 * /admin/console/routes: the /admin/routes listing plus each route's chain in execution order with its
 * redacted settings, the scopes it demands and the minimization profile per purpose of use.
 */
export function describeRoutesInDetail(c: CompiledGateway, base: RouteListing) {
  const configs = new Map(c.config.routes.map((r) => [r.id, r]));
  const profiles = (c.config.minimization as { profiles?: Record<string, { description?: string }> } | undefined)?.profiles ?? {};
  return {
    ...base,
    profiles: Object.entries(profiles).map(([name, p]) => ({ name, description: typeof p?.description === 'string' ? p.description : '' })),
    routes: base.routes.map((r) => {
      const policies = (configs.get(r.id)?.policies ?? []).map((entry) => {
        const [name, config] = Object.entries(entry)[0] ?? ['?', {}];
        return { name, settings: redactSettings(config ?? {}) as Record<string, unknown> };
      });
      const scopes = policies.filter((p) => p.name === 'scopes').map((p) => p.settings);
      const minimization = policies.filter((p) => p.name === 'minimize').flatMap((p) => profilesByPurpose(p.settings));
      return { ...r, chain: policies, scopes, minimization };
    }),
  };
}
