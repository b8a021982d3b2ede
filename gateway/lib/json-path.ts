/**
 * The one small path language shared by field selectors (minimize) and projections (experience APIs):
 * `name`, `name.given`, `identifier[].value`, `entry[].resource`, `type[0].text`. Paths are parsed once
 * at config load; reading them never evaluates anything and never touches the prototype chain.
 */
export interface PathSegment {
  key: string;
  /** `[]`: every element of an array. */
  each: boolean;
  /** `[N]`: one element of an array. */
  index?: number;
}

/** JSON Schema `pattern` for a path, so config errors point at the exact YAML key. */
export const PATH_PATTERN = '^[A-Za-z_$][A-Za-z0-9_$-]*(\\[[0-9]*\\])?(\\.[A-Za-z_$][A-Za-z0-9_$-]*(\\[[0-9]*\\])?)*$';
const PATH_RE = new RegExp(PATH_PATTERN);
const SEGMENT_RE = /^([A-Za-z_$][A-Za-z0-9_$-]*)(?:\[([0-9]*)\])?$/;
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

export class PathSyntaxError extends Error {
  override name = 'PathSyntaxError';
}

export function parsePath(path: string): PathSegment[] {
  if (!PATH_RE.test(path)) throw new PathSyntaxError(`"${path}" is not a field path (expected e.g. name.given or identifier[].value)`);
  return path.split('.').map((raw) => {
    const m = SEGMENT_RE.exec(raw)!;
    if (FORBIDDEN.has(m[1])) throw new PathSyntaxError(`"${path}" uses the reserved name ${m[1]}`);
    if (m[2] === undefined) return { key: m[1], each: false };
    return m[2] === '' ? { key: m[1], each: true } : { key: m[1], each: false, index: Number(m[2]) };
  });
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own properties only: a document's `__proto__` key or an inherited name never resolves. */
export function ownValue(obj: unknown, key: string): unknown {
  return isPlainObject(obj) && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

export type Getter = (doc: unknown) => unknown;

/**
 * A reader for one path. Arrays are walked FHIRPath-style: `[]` (or an array met on the way) maps over
 * the elements and the result is a flat list without missing values; a path with no array is a value
 * or undefined.
 */
export function compileGetter(path: string): Getter {
  const segments = parsePath(path);
  return (doc) => {
    let current: unknown[] = [doc];
    let many = false;
    for (const s of segments) {
      if (s.each) many = true;
      const next: unknown[] = [];
      for (const c of current) {
        const v = ownValue(c, s.key);
        if (v === undefined) continue;
        if (s.index !== undefined) {
          if (Array.isArray(v) && v[s.index] !== undefined) next.push(v[s.index]);
        } else if (Array.isArray(v)) {
          many = true;
          next.push(...v.filter((x) => x !== undefined && x !== null));
        } else next.push(v);
      }
      current = next;
    }
    return many ? current : current[0];
  };
}
