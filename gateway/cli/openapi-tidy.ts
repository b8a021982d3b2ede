/**
 * Shapes of a generated OpenAPI document that linters (Spectral `oas`, Redocly `recommended`) read
 * better: every `$defs` entry of a bundled schema becomes a component of its own (a reference into a
 * component's `$defs` is not seen as using anything), and components nothing reaches are dropped.
 */
const DEFS_REF = /#\/components\/schemas\/([A-Za-z0-9._-]+)\/\$defs\/([A-Za-z0-9._-]+)(?=")/g;
const SCHEMA_REF = /"#\/components\/schemas\/([A-Za-z0-9._-]+)"/g;

type Doc = { paths: unknown; components: { schemas: Record<string, any>; responses?: unknown } };

export function tidyComponents<T extends Doc>(doc: T): T {
  const schemas = doc.components.schemas;
  // 1. Hoist $defs: `X/$defs/y` → component `X.y`.
  for (const [name, schema] of Object.entries(schemas)) {
    if (!schema || typeof schema !== 'object' || !schema.$defs) continue;
    for (const [def, s] of Object.entries(schema.$defs as Record<string, unknown>)) schemas[`${name}.${def}`] = s;
    delete schema.$defs;
  }
  const text = JSON.stringify(doc).replace(DEFS_REF, (_m, name: string, def: string) => `#/components/schemas/${name}.${def}`);
  const out = JSON.parse(text) as T;
  // 2. Keep what the paths and responses reach, directly or through other components.
  const reached = new Set<string>();
  const visit = (json: string) => {
    for (const m of json.matchAll(SCHEMA_REF)) {
      if (reached.has(m[1])) continue;
      reached.add(m[1]);
      visit(JSON.stringify(out.components.schemas[m[1]] ?? null));
    }
  };
  visit(JSON.stringify({ paths: out.paths, responses: out.components.responses }));
  for (const name of Object.keys(out.components.schemas)) if (!reached.has(name)) delete out.components.schemas[name];
  return out;
}
