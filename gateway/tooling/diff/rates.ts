import { bothSides, type FacetChange } from './change.ts';

export interface Limit {
  limit: number;
  windowMs: number;
}
/** The limits a rate-limit policy applies: to every caller, and to each client id with an override. */
export interface RateLimits {
  all: readonly Limit[];
  clients: Readonly<Record<string, readonly Limit[]>>;
}

interface LimitsConfig {
  limit?: number;
  window?: string;
  limits?: Array<{ limit: number; window: string }>;
}

/** The effective limits of a (validated) rate-limit config: an override's bare `limit` keeps the route's window. */
export function rateLimitsOf(config: LimitsConfig & { overrides?: Record<string, { limit?: number; limits?: LimitsConfig['limits'] }> }, parseDuration: (s: string) => number): RateLimits {
  const spec = (c: LimitsConfig): Limit[] => (c.limits ?? [{ limit: c.limit!, window: c.window! }]).map((l) => ({ limit: l.limit, windowMs: parseDuration(l.window) }));
  const all = spec(config);
  const clients: Record<string, Limit[]> = {};
  for (const [client, o] of Object.entries(config.overrides ?? {})) clients[client] = o.limits ? spec(o) : [{ ...all[0], limit: o.limit ?? all[0].limit }];
  return { all, clients };
}

const WINDOW_UNITS: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's'], [1, 'ms']];
const showWindow = (ms: number) => {
  const [size, unit] = WINDOW_UNITS.find(([u]) => ms % u === 0)!;
  return `${ms / size}${unit}`;
};
const perSecond = (l: Limit) => (l.limit * 1000) / l.windowMs;
const show = (l: Limit) => `${l.limit}/${showWindow(l.windowMs)} (${Number(perSecond(l).toPrecision(3))}/s)`;

/**
 * One caller's limits, before and after. Limits with the same window are compared by count; the rest are
 * paired in window order and compared as limit ÷ window, where a higher rate or a higher count (a larger
 * burst) widens. A limit dropped without a partner widens; one added narrows.
 */
function compareLimits(prev: readonly Limit[], next: readonly Limit[], who: string): FacetChange[] {
  const out: FacetChange[] = [];
  const pairs: Array<[Limit, Limit]> = [];
  const restPrev = prev.filter((p) => {
    const same = next.find((n) => n.windowMs === p.windowMs);
    if (same) pairs.push([p, same]);
    return !same;
  });
  const restNext = [...next.filter((n) => !prev.some((p) => p.windowMs === n.windowMs))].sort((a, b) => a.windowMs - b.windowMs);
  restPrev.sort((a, b) => a.windowMs - b.windowMs);
  while (restPrev.length && restNext.length) pairs.push([restPrev.shift()!, restNext.shift()!]);
  for (const [p, n] of pairs) {
    if (p.limit === n.limit && p.windowMs === n.windowMs) continue;
    const wider = perSecond(n) > perSecond(p) || n.limit > p.limit;
    out.push({ effect: wider ? 'widening' : 'narrowing', text: `${who}: ${show(p)} → ${show(n)}` });
  }
  for (const p of restPrev) out.push({ effect: 'widening', text: `${who}: limit ${show(p)} removed` });
  for (const n of restNext) out.push({ effect: 'narrowing', text: `${who}: limit ${show(n)} added` });
  return out;
}

/** Every caller class present on either side, each judged on its effective limits (an override, else the route's). */
export function compareRates(prev: RateLimits, next: RateLimits): FacetChange[] {
  const out = compareLimits(prev.all, next.all, 'every caller');
  const byClient = bothSides(prev.clients, next.clients).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [client, p, n] of byClient) out.push(...compareLimits(p ?? prev.all, n ?? next.all, `client ${client}`));
  return out;
}
