import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { compile as compilePath, match as compileMatcher, type MatchFunction } from 'path-to-regexp';
import { isPlainObject } from '../lib/json-path.ts';
import type { CompiledRoute } from '../sdk/types.ts';
import type { Upstream } from '../upstream/upstreams.ts';

/**
 * Upstream addresses never reach a client. Absolute URLs an upstream hands out (Bundle `fullUrl`,
 * `link[].url`, `entry.response.location`, any string naming an upstream, `Location`, `Content-Location`,
 * `Link`) are rewritten to the gateway's public URL of the route that governs them; a URL that maps to no
 * governed GET route is removed (fail closed: a client that followed it would walk around the gateway).
 * Upstream banners (`Server`, `X-Powered-By`, …) are removed. Everything here is built at config load.
 */

/** Headers that name the upstream's software or topology. */
export const BANNER_HEADERS = ['server', 'x-powered-by', 'x-aspnet-version', 'x-aspnetmvc-version', 'via', 'x-runtime', 'x-generator', 'x-backend-server', 'x-served-by', 'x-upstream', 'x-envoy-upstream-service-time'];
/** Headers holding one URL. */
const URL_HEADERS = ['location', 'content-location'];

interface Governed {
  route: CompiledRoute;
  upstream: Upstream;
  /** Matches a path relative to the upstream base against the route's target path. */
  matchTarget: MatchFunction<Record<string, string | string[]>>;
  toPublic: (params: Record<string, string>) => string;
  routeParams: string[];
}

export interface PublicLinksOptions {
  publicBaseUrl?: string;
  allowedHosts?: readonly string[];
}

export interface PublicLinks {
  /** The gateway's public base for this request, or undefined when none can be trusted. */
  publicBase(req: IncomingMessage): string | undefined;
  /** The body with upstream URLs rewritten or removed (the input is not mutated; unchanged parts are shared). */
  rewriteBody(body: unknown, route: CompiledRoute, req: IncomingMessage): unknown;
  /**
   * True when `rewriteBody` would return the parsed body unchanged, judged from the upstream's bytes alone,
   * so they can be sent as they are. Fails closed: any byte that might spell an upstream address or a key
   * rewritten whatever it names (escapes, `fullUrl`, `link`, `location`, invalid UTF-8) answers false.
   */
  verbatimSafe(raw: Buffer): boolean;
  /** Removes banners and rewrites (or removes) URL headers in place. */
  rewriteHeaders(headers: OutgoingHttpHeaders | IncomingMessage['headers'], route: CompiledRoute, req: IncomingMessage, upstreamUrl?: string): void;
}

const REMOVE = Symbol('remove');
const ABSOLUTE = /^https?:\/\//i;
const URL_IN_TEXT = /https?:\/\/[^\s"'<>]+/gi;

const normalHost = (h: string) => h.trim().toLowerCase();

/** `__proto__` is data here (JSON.parse made it an own key): define it, never assign it. */
function define(out: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

/** A new object holding the keys of `v` that come before `stop` (in `v`'s own order). */
function copyBefore(v: Record<string, unknown>, stop: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in v) {
    if (k === stop) break;
    if (Object.hasOwn(v, k)) define(out, k, v[k]);
  }
  return out;
}

export function createPublicLinks(routes: readonly CompiledRoute[], upstreams: ReadonlyMap<string, Upstream>, opts: PublicLinksOptions): PublicLinks {
  const configuredBase = opts.publicBaseUrl?.replace(/\/+$/, '');
  const allowed = new Set((opts.allowedHosts ?? []).map(normalHost));
  const bases = [...upstreams.values()].map((u) => {
    const path = u.url.pathname.replace(/\/+$/, '');
    return { upstream: u, origin: u.url.origin.toLowerCase(), path, prefix: u.url.origin + path };
  });

  // System routes that answer GET with one upstream call are the public names of upstream resources.
  // Built on first use: the compiler hands over its route list while it is still filling it.
  let governed: Governed[] | undefined;
  const governedRoutes = () => (governed ??= routes.flatMap((route): Governed[] => {
    const t = route.targetConfig as { upstream?: unknown; path?: unknown };
    if (route.layer !== 'system' || !route.methods.includes('GET') || typeof t.upstream !== 'string' || typeof t.path !== 'string') return [];
    const upstream = upstreams.get(t.upstream);
    if (!upstream) return [];
    return [{
      route,
      upstream,
      matchTarget: compileMatcher(t.path, { decode: decodeURIComponent }),
      toPublic: compilePath(route.path, { encode: encodeURIComponent }) as (p: Record<string, string>) => string,
      routeParams: [...route.path.matchAll(/:(\w+)/g)].map((m) => m[1]),
    }];
  }));
  /** Candidates per route, nearest first: the route itself, then routes sharing the longest path prefix. */
  const common = (a: string, b: string) => {
    let i = 0;
    while (i < a.length && a[i] === b[i]) i++;
    return i;
  };
  const candidates = new Map<CompiledRoute, Governed[]>();
  const candidatesFor = (route: CompiledRoute) => {
    let c = candidates.get(route);
    if (!c) {
      c = governedRoutes()
        .map((g, i) => ({ g, i, score: g.route === route ? Infinity : common(g.route.path, route.path) }))
        .sort((a, b) => b.score - a.score || a.i - b.i)
        .map((x) => x.g);
      candidates.set(route, c);
    }
    return c;
  };

  function publicBase(req: IncomingMessage): string | undefined {
    if (configuredBase) return configuredBase;
    const host = req.headers.host;
    if (typeof host !== 'string' || !allowed.has(normalHost(host))) return undefined;
    return `${(req as { protocol?: string }).protocol === 'https' ? 'https' : 'http'}://${host}`;
  }

  /** Which upstream (if any) an absolute URL points into, and the path relative to its base. */
  function intoUpstream(u: URL) {
    const origin = u.origin.toLowerCase();
    for (const b of bases) {
      if (b.origin !== origin) continue;
      if (u.pathname === b.path || u.pathname.startsWith(`${b.path}/`)) return { upstream: b.upstream, rel: u.pathname.slice(b.path.length) || '/' };
    }
    return undefined;
  }

  /** Fast path for the common case, a URL spelled exactly as the upstream's base: no URL parse. */
  function splitUnderBase(raw: string): { upstream: Upstream; rel: string; search: string } | undefined {
    for (const b of bases) {
      if (!raw.startsWith(b.prefix)) continue;
      const rest = raw.slice(b.prefix.length);
      if (rest !== '' && rest[0] !== '/' && rest[0] !== '?') continue;
      if (rest.includes('#') || rest.includes('\\') || rest.includes('%') || rest.includes('/.')) return undefined; // let the URL parser normalise it
      const q = rest.indexOf('?');
      return { upstream: b.upstream, rel: (q === -1 ? rest : rest.slice(0, q)) || '/', search: q === -1 ? '' : rest.slice(q) };
    }
    return undefined;
  }

  /** An upstream URL → the public URL of the governing route, or undefined. */
  function mapUrl(raw: string, route: CompiledRoute, base: string | undefined): string | undefined {
    if (!base) return undefined;
    let into = splitUnderBase(raw);
    if (!into) {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        return undefined;
      }
      const parsed = intoUpstream(u);
      if (!parsed) return undefined;
      into = { ...parsed, search: u.search };
    }
    for (const g of candidatesFor(route)) {
      if (g.upstream !== into.upstream) continue;
      let m: ReturnType<Governed['matchTarget']>;
      try {
        m = g.matchTarget(into.rel);
      } catch {
        continue;
      }
      if (!m) continue;
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.params)) if (typeof v === 'string') params[k] = v;
      if (!g.routeParams.every((p) => params[p] !== undefined)) continue;
      return base + g.toPublic(params) + into.search;
    }
    return undefined;
  }

  const namesUpstream = (s: string) => {
    const lower = s.toLowerCase();
    return bases.some((b) => lower.includes(b.origin));
  };

  /** A string that names an upstream: each URL in it mapped, or (for a whole-URL value) removed. */
  function rewriteString(s: string, key: string, route: CompiledRoute, base: string | undefined, governedKey: boolean): string | typeof REMOVE {
    if (ABSOLUTE.test(s) && !/\s/.test(s.trim())) {
      if (!governedKey && !namesUpstream(s)) return s; // a code system or profile URL, not an address of ours
      const mapped = mapUrl(s, route, base);
      if (mapped !== undefined) return mapped;
      // A FHIR reference into an upstream stays a reference, relative as FHIR allows.
      if (key === 'reference') {
        const into = (() => {
          try {
            return intoUpstream(new URL(s));
          } catch {
            return undefined;
          }
        })();
        if (into && into.rel.length > 1) return into.rel.slice(1);
      }
      return REMOVE;
    }
    if (!namesUpstream(s)) return s;
    // Free text naming an upstream address (diagnostics): each such URL is mapped or blanked.
    return s.replace(URL_IN_TEXT, (m) => (namesUpstream(m) ? (mapUrl(m, route, base) ?? '[removed]') : m));
  }

  /** A Bundle's paging links: one that cannot go through the gateway is dropped whole, not left without its url. */
  function rewriteLinks(links: unknown[], route: CompiledRoute, base: string | undefined): unknown[] {
    return links.flatMap((l) => {
      if (!isPlainObject(l) || typeof l.url !== 'string') return [];
      const url = rewriteString(l.url, 'url', route, base, true);
      return url === REMOVE ? [] : [{ ...(walk(l, 'link', route, base) as object), url }];
    });
  }

  /**
   * Copy on write: a subtree with nothing to rewrite is returned as it is (the same object), so a body
   * with few URLs costs a walk, not a copy of every object in it. No closure may be written inside: one
   * capturing its parameters makes V8 allocate a context on every call, and the walk is called for every
   * value of a body (~70 KB of garbage per 50-entry Bundle, when the paging-link callback lived here).
   */
  function walk(v: unknown, key: string, route: CompiledRoute, base: string | undefined, governedKey = false): unknown {
    if (typeof v === 'string') return v.includes('://') ? rewriteString(v, key, route, base, governedKey) : v;
    if (Array.isArray(v)) {
      let out: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const r = walk(v[i], key, route, base);
        if (out === undefined) {
          if (r === v[i]) continue;
          out = v.slice(0, i);
        }
        if (r !== REMOVE) out.push(r);
      }
      return out ?? v;
    }
    if (!isPlainObject(v)) return v;
    const bundle = v.resourceType === 'Bundle';
    let out: Record<string, unknown> | undefined;
    // for…in, not Object.entries: a Bundle has thousands of small objects, and the pairs were most of the
    // walk's garbage. Own keys only, as Object.entries gives them.
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue;
      const x = v[k];
      if (bundle && k === 'link' && Array.isArray(x)) {
        const link = rewriteLinks(x, route, base);
        out ??= copyBefore(v, k);
        if (link.length) out.link = link; // FHIR JSON has no empty arrays
        continue;
      }
      const r = walk(x, k, route, base, k === 'fullUrl' || (key === 'response' && k === 'location'));
      if (out === undefined) {
        if (r === x) continue;
        out = copyBefore(v, k);
      }
      if (r !== REMOVE) define(out, k, r);
    }
    return out ?? v;
  }

  // Upstream host names as namesUpstream() finds them (lower-cased text containing the origin): a body
  // without the host name cannot contain the origin. Names without letters (IP addresses) are found in the
  // bytes directly: lower-casing never produces digits, dots, colons or brackets.
  const hostNeedles = bases.map((b) => {
    const host = b.upstream.url.hostname.toLowerCase();
    return /[a-z]/.test(host) ? { text: host } : { bytes: Buffer.from(host) };
  });
  // `fullUrl`, Bundle `link` and `response.location` are rewritten (or removed) whatever URL they hold;
  // a backslash may escape any character of a key or an address.
  const ALWAYS_REWRITTEN = ['"fullUrl"', '"link"', '"location"', '\\'].map((k) => Buffer.from(k));

  function verbatimSafe(raw: Buffer): boolean {
    for (const k of ALWAYS_REWRITTEN) if (raw.includes(k)) return false;
    if (!isUtf8(raw)) return false;
    let lower: string | undefined;
    for (const n of hostNeedles) {
      if (n.bytes ? raw.includes(n.bytes) : (lower ??= raw.toString('utf8').toLowerCase()).includes(n.text!)) return false;
    }
    return true;
  }

  function rewriteHeaders(headers: OutgoingHttpHeaders, route: CompiledRoute, req: IncomingMessage, upstreamUrl?: string): void {
    for (const h of BANNER_HEADERS) delete headers[h];
    const base = publicBase(req);
    for (const h of URL_HEADERS) {
      const v = headers[h];
      if (v === undefined) continue;
      let abs: string | undefined;
      try {
        abs = new URL(String(v), upstreamUrl).href;
      } catch {
        abs = undefined;
      }
      const mapped = abs === undefined ? undefined : mapUrl(abs, route, base);
      if (mapped === undefined) delete headers[h];
      else headers[h] = mapped;
    }
    const link = headers.link;
    if (link !== undefined) {
      let ok = true;
      const text = (Array.isArray(link) ? link.join(', ') : String(link)).replace(/<([^>]*)>/g, (_m, url: string) => {
        let mapped: string | undefined;
        try {
          mapped = mapUrl(new URL(url, upstreamUrl).href, route, base);
        } catch {
          mapped = undefined;
        }
        if (mapped === undefined) ok = false;
        return `<${mapped ?? ''}>`;
      });
      if (ok) headers.link = text;
      else delete headers.link;
    }
  }

  return {
    publicBase,
    rewriteBody: (body, route, req) => {
      const r = walk(body, '', route, publicBase(req));
      return r === REMOVE ? null : r;
    },
    verbatimSafe,
    rewriteHeaders: rewriteHeaders as PublicLinks['rewriteHeaders'],
  };
}
