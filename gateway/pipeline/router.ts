import { match as compileMatcher, type MatchFunction } from 'path-to-regexp';
import type { CompiledRoute } from '../sdk/types.ts';

export type RouteMatch =
  | { kind: 'route'; route: CompiledRoute; params: Record<string, string> }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'none' };

interface Entry {
  route: CompiledRoute;
  methods: ReadonlySet<string>;
  match: MatchFunction<Record<string, string | string[]>>;
}

/** Segments that could walk out of a route's target once the upstream normalises the path. */
const DOT_SEGMENT = /(^|\/)\.{1,2}(\/|$)/;

/** Separators and dot segments, also percent-encoded (a value that was double-encoded by the client). */
const UNSAFE_IN_PARAM = /[/\\\u0000-\u001f\u007f]|%(2f|5c|00|2e)/i;

/**
 * Param values are substituted into upstream paths: they must stay one path segment, also for an
 * upstream that decodes twice or folds Unicode compatibility forms (NFKC turns `．．` into `..`, `／` into `/`).
 */
function safeParam(v: string): boolean {
  return [v, v.normalize('NFKC')].every((s) => s !== '.' && s !== '..' && !UNSAFE_IN_PARAM.test(s));
}

/**
 * Percent-encoded unreserved characters mean the characters themselves (RFC 3986 §6.2.2.2): decoded before
 * matching, `/public/%61dmin` cannot slip past a protected `/public/admin` into a `/public/:name` route.
 * (`%2E` is not among them: encoded dots are refused outright.)
 */
const ENCODED_UNRESERVED = /%(?:3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)/gi;
const decodeUnreserved = (path: string) => (path.includes('%') ? path.replace(ENCODED_UNRESERVED, (m) => String.fromCharCode(parseInt(m.slice(1), 16))) : path);

/**
 * Matching is case-sensitive and exact, in routes.yaml order; it runs on the raw path (unreserved
 * characters decoded), and the router refuses paths whose meaning could differ between us and the
 * upstream (dot segments, encoded slashes or backslashes, NUL), instead of guessing how the upstream
 * would normalise them.
 */
export function createRouter(routes: readonly CompiledRoute[]) {
  const entries: Entry[] = routes.map((route) => ({
    route,
    methods: new Set(route.methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]))),
    match: compileMatcher(route.path, { sensitive: true, trailing: false, decode: decodeURIComponent }),
  }));

  function match(method: string, rawPath: string): RouteMatch | 'bad-path' {
    if (DOT_SEGMENT.test(rawPath) || /%(2f|5c|00|2e)/i.test(rawPath) || rawPath.includes('\\') || rawPath.includes('//')) return 'bad-path';
    const path = decodeUnreserved(rawPath);
    let allow: string[] | undefined;
    for (const e of entries) {
      let m: ReturnType<typeof e.match>;
      try {
        m = e.match(path);
      } catch {
        return 'bad-path'; // malformed percent-encoding
      }
      if (!m) continue;
      if (!e.methods.has(method)) {
        (allow ??= []).push(...e.methods);
        continue;
      }
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.params)) {
        const s = Array.isArray(v) ? v.join('/') : v;
        if (s !== undefined && !safeParam(s)) return 'bad-path';
        if (s !== undefined) params[k] = s;
      }
      return { kind: 'route', route: e.route, params };
    }
    return allow ? { kind: 'method-not-allowed', allow: [...new Set(allow)] } : { kind: 'none' };
  }

  return { routes, match };
}

export type Router = ReturnType<typeof createRouter>;
