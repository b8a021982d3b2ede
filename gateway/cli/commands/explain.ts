/** `hcgw explain METHOD PATH …`: one request through the real chain, decision by decision (docs/policy-tooling.md). */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../../config/errors.ts';
import { loadConfigFile } from '../../config/load.ts';
import { explain, type ExplainRequest } from '../../tooling/explain/run.ts';
import { formatExplanation } from '../../tooling/explain/format.ts';
import type { Caller, UpstreamAnswer } from '../../tooling/spec.ts';
import { parseOptions, printConfigError, UsageError } from '../command.ts';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  issuer: { type: 'string' },
  client: { type: 'string' },
  sub: { type: 'string' },
  scope: { type: 'string', multiple: true },
  patient: { type: 'string' },
  'fhir-user': { type: 'string' },
  claims: { type: 'string' },
  anonymous: { type: 'boolean' },
  purpose: { type: 'string' },
  header: { type: 'string', short: 'H', multiple: true },
  body: { type: 'string' },
  answer: { type: 'string', multiple: true },
  json: { type: 'boolean' },
} as const;

function json(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UsageError(`${what} is not valid JSON`);
  }
}

/** `JSON` or `@file` (read from the working directory). */
function jsonArg(value: string, what: string): unknown {
  if (!value.startsWith('@')) return json(value, what);
  let text: string;
  try {
    text = readFileSync(value.slice(1), 'utf8');
  } catch {
    throw new UsageError(`${what}: cannot read ${value.slice(1)}`);
  }
  return json(text, `${what} (${value.slice(1)})`);
}

/** `ehr=@obs.json`, `ehr/Consent={"resourceType":"Bundle"…}`: an upstream, an optional path prefix, the answer. */
function answers(specs: string[]): Record<string, UpstreamAnswer[]> {
  const out: Record<string, UpstreamAnswer[]> = {};
  for (const spec of specs) {
    const m = /^([A-Za-z0-9_.-]+)(\/[^=]*)?=(.+)$/s.exec(spec);
    if (!m) throw new UsageError(`--answer ${spec}: expected UPSTREAM[/PATH]=@file.json or UPSTREAM[/PATH]=JSON`);
    const [, name, path, value] = m;
    const answer: UpstreamAnswer = value.startsWith('@') ? { file: resolve(value.slice(1)) } : { body: json(value, `--answer ${name}`) };
    (out[name] ??= []).push(path ? { path, ...answer } : answer);
  }
  return out;
}

function headers(list: string[]): Record<string, string> {
  return Object.fromEntries(
    list.map((h) => {
      const i = h.indexOf(':');
      if (i < 1) throw new UsageError(`--header ${h}: expected 'Name: value'`);
      return [h.slice(0, i).trim().toLowerCase(), h.slice(i + 1).trim()];
    }),
  );
}

/** The command line read into the request to explain; `json`: print JSON rather than text. */
export async function explainArgs(args: string[]): Promise<{ request: ExplainRequest; json: boolean }> {
  const { values, positionals } = parseOptions(args, OPTIONS, true);
  if (positionals.length !== 2) throw new UsageError('explain takes METHOD and PATH (e.g. GET "/system/ehr/Observation?patient=p2")');
  const [method, path] = [positionals[0].toUpperCase(), positionals[1]];
  if (!path.startsWith('/')) throw new UsageError('PATH must start with /');
  const configFile = values.config ?? process.env.HCGW_CONFIG ?? 'routes.yaml';
  const issuers = (await loadConfigFile(configFile)).config.identity.issuers;
  const issuer = values.issuer ?? issuers[0]?.name;
  if (!values.anonymous && !issuers.some((i) => i.name === issuer)) throw new UsageError(`--issuer ${issuer ?? ''}: not in identity.issuers of ${configFile}`);
  const caller: Caller | undefined = values.anonymous
    ? undefined
    : {
        issuer: issuer!,
        client: values.client ?? 'explain-client',
        subject: values.sub,
        scopes: (values.scope ?? []).flatMap((s) => s.split(/\s+/)).filter(Boolean),
        patient: values.patient,
        fhirUser: values['fhir-user'],
        claims: values.claims === undefined ? undefined : (jsonArg(values.claims, '--claims') as Record<string, unknown>),
        token: 'valid',
      };
  const request: ExplainRequest = {
    config: configFile,
    method,
    path,
    caller,
    purpose: values.purpose,
    headers: headers(values.header ?? []),
    body: values.body === undefined ? undefined : jsonArg(values.body, '--body'),
    answers: answers(values.answer ?? []),
  };
  return { request, json: Boolean(values.json) };
}

/** What `hcgw explain ARGS` prints: the explanation as text, or as JSON with --json. */
export async function explainOutput(args: string[]): Promise<string> {
  const { request, json } = await explainArgs(args);
  const e = await explain(request);
  return json ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e);
}

export async function run(args: string[]): Promise<number> {
  try {
    process.stdout.write(await explainOutput(args));
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    printConfigError(err);
    return 1;
  }
}
