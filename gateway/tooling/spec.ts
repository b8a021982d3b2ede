/**
 * Policy test files (`policy-tests/*.yaml`): the format security teams write. Parsed with the `yaml`
 * library and checked with the project's one ajv factory, so a typo in a test is an error with its path,
 * never a silently skipped expectation.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { FromSchema } from 'json-schema-to-ts';
import { createAjv } from '../lib/ajv.ts';
import { ajvIssues, ConfigError } from '../config/errors.ts';

const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;

/** What one upstream answers: inline JSON (`body`) or a fixture file relative to the test file. */
const answerSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    path: { type: 'string', description: 'Answer only calls whose path (below the upstream base URL) starts with this' },
    status: { type: 'integer', minimum: 100, maximum: 599, description: 'Default 200' },
    headers: stringMap,
    body: { description: 'JSON body of the answer' },
    file: { type: 'string', description: 'JSON fixture file, relative to the test file' },
  },
} as const;

const callerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['issuer'],
  properties: {
    issuer: { type: 'string', description: 'Name of an entry of identity.issuers; the tool signs the token for it' },
    client: { type: 'string' },
    subject: { type: 'string' },
    scopes: { type: 'array', items: { type: 'string' } },
    patient: { type: 'string' },
    fhirUser: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    audience: { type: 'string', description: "Token audience (default: the issuer's first audience)" },
    claims: { type: 'object', description: 'Further token claims' },
    token: {
      enum: ['valid', 'expired', 'bad-signature', 'wrong-audience', 'malformed'],
      default: 'valid',
      description: 'A broken token, to test how the chain refuses it',
    },
  },
} as const;

const expectSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'integer' },
    type: { type: 'string', description: 'Problem type: the full URI or its last segment (`insufficient-scope`)' },
    decision: {
      type: 'object',
      additionalProperties: false,
      properties: {
        policy: { type: ['string', 'null'], description: 'The policy that denied the request; null: none did' },
        reason: { type: 'string' },
      },
    },
    headers: { type: 'object', additionalProperties: { type: ['string', 'null'] }, description: 'null: the header must be absent' },
    present: { type: 'array', items: { type: 'string' }, description: 'JSON pointers that must exist in the response body' },
    absent: { type: 'array', items: { type: 'string' }, description: 'JSON pointers that must not exist in the response body' },
    equals: { type: 'object', description: 'JSON pointer → expected value in the response body' },
    entries: { type: 'integer', minimum: 0, description: 'Number of Bundle entries in the response body' },
    audit: { type: 'object', description: 'JSON pointer → expected value in the audit record of the request' },
    upstream: {
      oneOf: [
        { const: 'none', description: 'No upstream was called' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string' },
            path: { type: 'string' },
            query: { type: 'object', additionalProperties: { type: ['string', 'null'] } },
            headers: { type: 'object', additionalProperties: { type: ['string', 'null'] } },
          },
        },
      ],
    },
  },
} as const;

const caseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'request', 'expect'],
  properties: {
    name: { type: 'string', minLength: 1 },
    request: {
      type: 'object',
      additionalProperties: false,
      required: ['path'],
      properties: {
        method: { type: 'string', default: 'GET' },
        path: { type: 'string', pattern: '^/' },
        query: stringMap,
        headers: stringMap,
        body: {},
      },
    },
    caller: callerSchema,
    purpose: { type: 'string', description: 'Purpose of use (sent as X-Purpose-Of-Use)' },
    upstreams: {
      type: 'object',
      additionalProperties: { oneOf: [answerSchema, { type: 'array', items: answerSchema }] },
      description: 'Upstream name → answer(s); upstreams not named answer from the sandbox when the file says sandbox: true',
    },
    repeat: { type: 'integer', minimum: 1, maximum: 100, default: 1, description: 'Send the request this many times, one after another; expectations apply to the last answer' },
    burst: { type: 'integer', minimum: 2, maximum: 200, description: 'Send the request this many times at once; the case passes when one answer meets the expectations' },
    expect: expectSchema,
  },
} as const;

export const testFileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['cases'],
  properties: {
    config: { type: 'string', description: 'routes.yaml to test, relative to the test file (default: ../routes.yaml)' },
    sandbox: { type: 'boolean', default: true, description: 'Upstreams a case does not stub answer from the demo sandbox' },
    cases: { type: 'array', minItems: 1, items: caseSchema },
  },
} as const;

export type TestFile = FromSchema<typeof testFileSchema>;
export type TestCase = TestFile['cases'][number];
export type Caller = NonNullable<TestCase['caller']>;
export type UpstreamAnswer = FromSchema<typeof answerSchema>;
export type Expectation = TestCase['expect'];

export interface LoadedTestFile {
  file: string;
  /** Absolute path of the routes.yaml the cases run against. */
  config: string;
  sandbox: boolean;
  cases: TestCase[];
}

const validate = createAjv({ useDefaults: true }).compile(testFileSchema);

/** Reads and checks one test file; every problem is reported at once as a ConfigError. */
export async function loadTestFile(file: string): Promise<LoadedTestFile> {
  let doc: unknown;
  try {
    doc = parseYaml(await readFile(file, 'utf8'), { merge: true }); // `<<: *caller` reuses a caller
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: (err as Error).message.split('\n')[0] }]);
  }
  if (!validate(doc)) throw new ConfigError(file, ajvIssues(validate.errors));
  const t = doc as TestFile;
  const dir = dirname(resolve(file));
  return { file, config: resolve(dir, t.config ?? '../routes.yaml'), sandbox: t.sandbox ?? true, cases: t.cases };
}
