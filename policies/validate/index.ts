import { pathToFileURL } from 'node:url';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { Counter } from 'prom-client';
import { createAjv } from '../../gateway/lib/ajv.ts';
import { PolicyConfigError, BadGateway, UnsupportedMediaType, ValidationFailed, definePolicy, type Exchange, type Policy, type PolicyContext, type PolicyHandler, type ResponseBody } from '../../gateway/sdk/index.ts';
import { isPlainObject } from '../../gateway/lib/json-path.ts';
import { SchemaFiles } from './schema-files.ts';

type Schema = Record<string, unknown>;
type Part = 'body' | 'query' | 'path' | 'header';

export interface ValidateConfig {
  body?: Schema;
  query?: Schema;
  params?: Schema;
  headers?: Schema & { properties?: Record<string, unknown> };
  response?: { schema: Schema; onFail: 'log' | 'reject'; statuses?: number[] };
}

export interface Violation {
  in: Part;
  /** JSON pointer into the validated part (RFC 6901); names the field, never its value. */
  pointer: string;
  message: string;
}

/** A hostile body can break thousands of rules; the answer stays small. */
const MAX_VIOLATIONS = 100;
const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * ajv errors → violations. Messages come from ajv's schema-side texts ("must be string", "must match
 * format \"date\""), which never contain the offending value; required and unknown properties point at
 * the property itself.
 */
export function violationsOf(errors: ErrorObject[] | null | undefined, part: Part): Violation[] {
  const out: Violation[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let pointer = e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      pointer += `/${escapePointer(String((e.params as { missingProperty: string }).missingProperty))}`;
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      pointer += `/${escapePointer(String((e.params as { additionalProperty: string }).additionalProperty))}`;
      message = 'is not allowed';
    }
    const key = `${pointer}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    // Names in the pointer may be the client's own (an unknown property): sent back in URI-fragment form
    // (RFC 6901 §6), so no markup or control character of the input is ever echoed as is.
    out.push({ in: part, pointer: pointer.split('/').map(encodeURIComponent).join('/'), message });
  }
  return out;
}

function failureCounter(ctx: PolicyContext): Counter<'route'> {
  const name = 'hcgw_response_validation_failures_total';
  return (ctx.metrics.registry.getSingleMetric(name) as Counter<'route'> | undefined) ??
    new Counter({ name, help: 'Upstream responses that failed the route\'s response schema', labelNames: ['route'] as const, registers: [ctx.metrics.registry] });
}

const queryObject = (q: URLSearchParams) =>
  Object.fromEntries([...new Set(q.keys())].map((k) => {
    const all = q.getAll(k);
    return [k, all.length === 1 ? all[0] : all];
  }));

const schemaOption = (description: string) => ({ type: 'object', description }) as const;

/**
 * Request (and optionally response) validation against JSON Schemas compiled once at load, with a fresh
 * ajv per policy instance (no defaults, no coercion: what the client sent is what is checked and sent on).
 * A failing request gets one 400 listing every violation by JSON pointer; values are never echoed.
 */
export const validatePolicy = definePolicy({
  name: 'validate',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    minProperties: 1,
    properties: {
      body: schemaOption('JSON Schema of the JSON request body (inline, or { $ref: path/to/schema.json } relative to routes.yaml); a body is then required'),
      query: schemaOption('JSON Schema of the query as an object: a parameter given once is a string, given several times an array of strings'),
      params: schemaOption('JSON Schema of the path parameters (all strings)'),
      headers: schemaOption('JSON Schema of the headers named in its `properties` (other headers are not looked at)'),
      response: {
        type: 'object',
        additionalProperties: false,
        required: ['schema'],
        description: 'Validate the upstream response body too',
        properties: {
          schema: schemaOption('JSON Schema of the response body'),
          onFail: { enum: ['log', 'reject'], default: 'log', description: 'log: warn and count hcgw_response_validation_failures_total; reject: answer 502' },
          statuses: {
            type: 'array',
            minItems: 1,
            uniqueItems: true,
            items: { type: 'integer', minimum: 100, maximum: 599 },
            description: 'Statuses whose bodies are validated (default: every 2xx)',
          },
        },
      },
    },
  },
  create(config, ctx) {
    // Strict as everywhere, except strictRequired: `required` without a sibling `properties` (inside
    // not/anyOf, or a bare `{required: [x]}`) is ordinary JSON Schema, common in standard schemas.
    const ajv = createAjv({ extra: { strictRequired: false } });
    const base = pathToFileURL(ctx.configDir.endsWith('/') ? ctx.configDir : `${ctx.configDir}/`);
    const files = new SchemaFiles(ajv);
    const compile = (schema: Schema | undefined, configPath: string): ValidateFunction | undefined => {
      if (!schema) return undefined;
      const prepared = files.prepare(schema, base, configPath);
      try {
        return ajv.compile(prepared as Schema);
      } catch (err) {
        throw new PolicyConfigError(`schema does not compile: ${(err as Error).message.split('\n')[0]}`, configPath);
      }
    };
    const body = compile(config.body, 'body');
    const query = compile(config.query, 'query');
    const params = compile(config.params, 'params');
    const headers = compile(config.headers, 'headers');
    const headerNames = Object.keys(isPlainObject(config.headers?.properties) ? config.headers.properties : {});
    if (headers && !headerNames.length) throw new PolicyConfigError('name the headers to validate under `properties`', 'headers');
    const response = config.response && { ...config.response, validate: compile(config.response.schema, 'response.schema')! };

    const check = (fn: ValidateFunction | undefined, data: unknown, part: Part, out: Violation[]) => {
      if (fn && !fn(data)) out.push(...violationsOf(fn.errors, part));
    };

    const onRequest = (ex: Exchange) => {
      const out: Violation[] = [];
      check(params, ex.params, 'path', out);
      check(query, queryObject(ex.query), 'query', out);
      if (headers) {
        const h = Object.fromEntries(headerNames.flatMap((n) => {
          const v = ex.req.headers[n.toLowerCase()];
          return v === undefined ? [] : [[n, v]];
        }));
        check(headers, h, 'header', out);
      }
      if (body) {
        if (ex.body?.length && ex.json === undefined) throw new UnsupportedMediaType({ detail: 'The request body must be JSON', reason: 'body-not-json' });
        if (ex.json === undefined) out.push({ in: 'body', pointer: '', message: 'a JSON body is required' });
        else check(body, ex.json, 'body', out);
      }
      if (out.length) {
        throw new ValidationFailed({
          detail: `${out.length} violation${out.length === 1 ? '' : 's'} of the route's schema`,
          reason: 'schema',
          extensions: { errors: out.slice(0, MAX_VIOLATIONS), ...(out.length > MAX_VIOLATIONS ? { truncated: true } : {}) },
        });
      }
    };
    const handler: PolicyHandler = { needsRequestBody: body !== undefined, onRequest };
    if (!response) return handler;
    const failures = failureCounter(ctx);
    return {
      ...handler,
      needsResponseBody: true,
      onResponse(ex: Exchange, res: ResponseBody) {
        const applies = response.statuses ? response.statuses.includes(res.status) : res.status >= 200 && res.status < 300;
        if (!applies || response.validate(res.body)) return;
        const violations = violationsOf(response.validate.errors, 'body').slice(0, MAX_VIOLATIONS);
        failures.inc({ route: ex.route.id });
        ctx.logger.warn('upstream response failed validation', { route: ex.route.id, requestId: ex.id, violations });
        if (response.onFail === 'reject') throw new BadGateway({ detail: 'The upstream response did not match the route\'s schema', reason: 'response-invalid' });
      },
    };
  },
});

export default validatePolicy;
