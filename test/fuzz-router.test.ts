import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createRouter } from '../gateway/pipeline/router.ts';
import { compileUpstreamPath } from '../gateway/targets/system.ts';
import type { CompiledRoute, RouteConfig } from '../gateway/sdk/types.ts';

/**
 * Property-based pass over the path matcher and the upstream path built from its params: whatever the
 * client sends, a matched param is one clean segment, and the upstream URL stays under the route's target
 * — also for an upstream that decodes again or folds Unicode compatibility forms.
 */

const RUNS = 300;

const ROUTES: Array<{ path: string; target: string }> = [
  { path: '/system/ehr/Patient/:id', target: '/fhir/Patient/:id' },
  { path: '/public/docs/:name', target: '/public/:name' },
  { path: '/a/:x/b/:y', target: '/deep/:y/:x' },
  { path: '/process/encounters/:id/financial-summary', target: '/Encounter/:id' },
];

const configs = ROUTES.map((r, i) => ({ id: `r${i}`, layer: 'system', match: { methods: ['GET'], path: r.path }, target: { upstream: 'u', path: r.target }, policies: [] }) as unknown as RouteConfig);
const router = createRouter(configs.map((c) => ({ id: c.id, layer: c.layer, methods: c.match.methods, path: c.match.path, targetConfig: c.target }) as unknown as CompiledRoute));
const toUpstream = new Map(configs.map((c, i) => [c.id, { build: compileUpstreamPath(c, ROUTES[i].target), prefix: ROUTES[i].target.split('/:')[0] }]));

/** Pieces attackers combine: dots, separators and their encodings, fullwidth and overlong forms, controls. */
const PIECES = ['.', '..', '%2e', '%2E', '%2f', '%2F', '%252f', '%252e', '%5c', '\\', '/', '//', '%00', '%0d%0a', '%C0%AE', '%C0%AF', '%EF%BC%8E', '%EF%BC%8F', '%EF%BC%85', '％', '．', '／', '⁄', '‥', '%E2%80%A5', 'a', 'Z', '%41', '%61', '~', ';', '%', '%zz', '%25', 'é', '%C3%A9', 'e%CC%81', '#', ' ', '%20', '\u0000', '\u202e', 'p1', 'Patient'];
const segment = fc.oneof(fc.constantFrom(...PIECES), fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 4 }).map((p) => p.join('')), fc.string({ unit: 'binary', maxLength: 6 }));
/** Mostly a route template with attacker-made params (about 40% match), sometimes free-form noise. */
const templated = fc.tuple(fc.constantFrom(...ROUTES.map((r) => r.path)), fc.array(segment, { minLength: 2, maxLength: 2 })).map(([t, segs]) => {
  let i = 0;
  return t.replace(/:\w+/g, () => segs[i++]);
});
const noise = fc.tuple(fc.constantFrom('/system/ehr/Patient/', '/public/docs/', '/a/', '/', ''), fc.array(segment, { minLength: 1, maxLength: 4 })).map(([p, segs]) => p + segs.join('/'));
const path = fc.oneof({ arbitrary: templated, weight: 4 }, { arbitrary: noise, weight: 1 });

/** The strictest reading an upstream might apply to one segment: decode up to three times, NFKC each time. */
function lenient(seg: string): string {
  let s = seg;
  for (let i = 0; i < 3; i++) {
    try {
      s = decodeURIComponent(s).normalize('NFKC');
    } catch {
      return s.normalize('NFKC');
    }
  }
  return s;
}

const UNSAFE = /[/\\\u0000-\u001f\u007f]/;

describe('fuzz: router and upstream paths', () => {
  test('matching never throws, and a matched param is one segment without dots, separators or controls', () => {
    fc.assert(
      fc.property(path, (p) => {
        const m = router.match('GET', p);
        if (m === 'bad-path' || m.kind !== 'route') return;
        for (const v of Object.values(m.params)) {
          for (const form of [v, v.normalize('NFKC')]) {
            assert.ok(form !== '.' && form !== '..' && !UNSAFE.test(form), `param ${JSON.stringify(v)} from ${JSON.stringify(p)}`);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('the upstream path built from matched params stays under the target prefix, one segment per param', () => {
    fc.assert(
      fc.property(path, (p) => {
        const m = router.match('GET', p);
        if (m === 'bad-path' || m.kind !== 'route') return;
        const { build, prefix: targetPrefix } = toUpstream.get(m.route.id)!;
        const upstreamPath = build(m.params);
        const url = new URL(`http://upstream.test/base${upstreamPath}`);
        assert.ok(url.pathname.startsWith(`/base${targetPrefix}/`), `${upstreamPath} left ${targetPrefix}`);
        const templateSegments = ROUTES.find((r) => r.path === m.route.path)!.target.split('/').length;
        const segments = url.pathname.slice('/base'.length).split('/');
        assert.equal(segments.length, templateSegments, `${upstreamPath} has extra segments`);
        for (const s of segments.slice(1)) {
          const read = lenient(s);
          assert.ok(read !== '.' && read !== '..' && !/[/\\]/.test(read), `${JSON.stringify(s)} reads as ${JSON.stringify(read)}`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  test('a path that differs from a literal route only by encoded unreserved characters matches that route', () => {
    const literal = createRouter([{ id: 'admin', layer: 'system', methods: ['GET'], path: '/public/docs/admin' } as unknown as CompiledRoute, router.routes[1]]);
    const encoded = fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }).map((flags) =>
      [...'admin'].map((ch, i) => (flags[i] ? `%${ch.charCodeAt(0).toString(16)[flags[(i + 1) % 5] ? 'toUpperCase' : 'toLowerCase']()}` : ch)).join(''),
    );
    fc.assert(
      fc.property(encoded, (name) => {
        const m = literal.match('GET', `/public/docs/${name}`);
        assert.ok(m !== 'bad-path' && m.kind === 'route' && m.route.id === 'admin', name);
      }),
      { numRuns: RUNS },
    );
  });
});
