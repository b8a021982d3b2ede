import { Ajv, type Options } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats ships CJS with a default export; under NodeNext it arrives wrapped.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ?? addFormatsModule) as unknown as AddFormats;

/**
 * The one ajv factory (STYLE: strict, allErrors, no coercion, no remote refs). Config validation uses
 * `useDefaults` so that defaults live in the schema, the single source of truth; request validation
 * does not (it must never change what the client sent).
 */
export function createAjv(opts: { useDefaults?: boolean; extra?: Options } = {}): Ajv {
  const ajv = new Ajv({
    strict: true,
    allErrors: true,
    coerceTypes: false,
    useDefaults: opts.useDefaults ?? false,
    allowUnionTypes: true,
    // No loadSchema: remote $refs are never fetched.
    ...opts.extra,
  });
  addFormats(ajv);
  // Descriptions and examples are documentation keywords we put on every field.
  ajv.addKeyword({ keyword: 'x-secret' });
  return ajv;
}
