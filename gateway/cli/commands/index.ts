import type { Command } from '../command.ts';

/**
 * Every `hcgw` command, in the order `hcgw --help` lists them. A new command is a module in this folder
 * exporting `run(args)`, plus one entry here.
 */
export const commands: readonly Command[] = [
  {
    name: 'start',
    summary: 'run the gateway',
    usage: `hcgw start [--config routes.yaml] [--sandbox] [--port N] [--workers N] [--watch]
  --config, -c   the config file (default: $HCGW_CONFIG or routes.yaml)
  --sandbox      also start the demo upstreams and the dev IdP
  --port         listen port (overrides server.port; 0 = any free port)
  --workers, -w  cluster size (default: one per CPU with a redis store, else 1)
  --watch        reload when the config file changes (SIGHUP always reloads)`,
    load: () => import('./start.ts'),
  },
  {
    name: 'validate',
    summary: 'check a routes.yaml; prints every error, exit 1 if any',
    usage: `hcgw validate [file] [--strict]
  Compiles the file exactly as start would (default routes.yaml): every error with its path and route id,
  deprecation warnings on stderr; exit 0 when it would start, 1 when not.
  --strict  also runs the lint rules (HCGW-L001…, docs/policy-tooling.md): each finding with its fix;
            exit 1 when a finding is not waived by the route's lint.waive.`,
    load: () => import('./validate.ts'),
  },
  {
    name: 'diff',
    summary: 'compare the governed surface of two configs; exit 2 if anything widens',
    usage: `hcgw diff OLD.yaml NEW.yaml [--json]
  Compiles both files as validate does, then compares what they govern, not their text: routes, issuers and
  audiences, scopes, purposes of use, fields released per resource type x profile x purpose, consent and
  patient-compartment coverage, rate limits (as limit / window) and lanes, upstream targets, policies and
  their mode. Each change is marked WIDENING (more access, more data, fewer limits) or narrowing; a change
  it cannot classify counts as widening. --json for machines (docs/policy-tooling.md).
  Exit 0 when nothing widens, 2 when anything widens, 1 on a config or usage error (nothing compared).`,
    load: () => import('./diff.ts'),
  },
  {
    name: 'token',
    summary: 'mint a dev token from the running sandbox IdP',
    usage: `hcgw token [--client ID] [--sub S] [--scope "a b"] [--patient ID] [--fhir-user REF] [--aud A] [--ttl SEC] [--idp URL] [--dpop] [--dpop-key f]
  Asks the sandbox's dev IdP (default http://127.0.0.1:9100, or $HCGW_DEV_IDP) for a signed access token
  and prints it. --dpop: the token is DPoP-bound (cnf.jkt) to a new key saved in --dpop-key (default
  .hcgw-dpop-key.json); the curl line to use it is printed on stderr.`,
    load: () => import('./token.ts'),
  },
  {
    name: 'dpop',
    summary: 'print a DPoP proof for one request',
    usage: `hcgw dpop [--key .hcgw-dpop-key.json] [--token ACCESS_TOKEN] METHOD URL
  A DPoP proof JWT (RFC 9449) for METHOD and URL, signed with the key \`hcgw token --dpop\` saved; with
  --token it carries ath (the token's hash). Use a fresh proof per request: the gateway refuses replays.`,
    load: () => import('./dpop.ts'),
  },
  {
    name: 'openapi',
    summary: 'write the OpenAPI 3.1 document of the governed routes',
    usage: `hcgw openapi [file] [--out f.json|f.yaml] [--server URL]
  The config is checked first (exit 1 if invalid); YAML when the output file ends in .yaml/.yml.`,
    load: () => import('./openapi.ts'),
  },
  {
    name: 'test',
    summary: 'run policy tests (default policy-tests/); exit 1 on a failure',
    usage: `hcgw test [file|dir …] [--junit out.xml] [--min-coverage N] [--verbose]
  Runs policy test files (default: policy-tests/*.yaml) through the real compiled chain over loopback HTTP,
  with a throw-away token issuer and stub upstreams (docs/policy-tooling.md). Prints PASS/FAIL per case with
  a diff, then the coverage of routes and decision branches. Exit 0 when every case passes and coverage is
  at least N %, 1 otherwise, 2 on a usage error. --junit writes JUnit XML for CI.`,
    load: () => import('./test.ts'),
  },
  {
    name: 'explain',
    summary: 'run one request through the real chain: route, each decision, what was removed',
    usage: `hcgw explain METHOD PATH [--client ID] [--scope "a b"] [--patient ID] [--claims JSON|@f] [--purpose CODE]
       [--header 'K: V']… [--body JSON|@file] [--answer UPSTREAM[/PATH]=@file.json|JSON]… [--config routes.yaml] [--json]
  Compiles the config and sends the request in-process (a throw-away token issuer signs the caller's token for
  --issuer, default the first; --anonymous sends none; upstreams answer from the demo sandbox unless --answer
  says otherwise). Prints the matched route, each policy's decision and reason code, what the response filters
  removed (resource types and field paths, never values) and the final status. Exit 0 whatever the answer.`,
    load: () => import('./explain.ts'),
  },
  {
    name: 'audit',
    summary: 'check audit hash chains; export them as FHIR AuditEvents',
    usage: `hcgw audit verify [--rotated] [--partial] <file...>
hcgw audit export --fhir [--from ISO] [--to ISO] [--out FILE] [--rotated] [--partial] <file...>
  Files oldest first (rotated ones, then the live one; --rotated adds each live file's rotated siblings).
  verify: prints OK <n> records (exit 0), or the first broken line (exit 1); NOTEs name gaps, segments and
  records in the old line format 1 (still verifiable). export: verifies the chain first (exit 1 and nothing
  written if it is broken), then writes a FHIR R4 Bundle (type collection) of the AuditEvents with recorded
  in [from, to) to stdout or FILE; format-1 records are skipped with a NOTE. A missing file is a usage error (exit 2).`,
    load: () => import('./audit.ts'),
  },
  {
    name: 'events',
    summary: 'event backbone: resend to a subscription, dead letters',
    usage: `hcgw events resend --subscription S --from <seq|ISO time> [--to <seq|time>]
hcgw events dlq list [--subscription S] | dlq retry ID | dlq drop ID
  Talks to the running gateway's admin API: --admin URL (default http://127.0.0.1:9901), --token T
  (default $HCGW_ADMIN_TOKEN). Dead letters are listed as metadata only (never event data).`,
    load: () => import('./events.ts'),
  },
  {
    name: 'report',
    summary: 'CMS-0057-F API usage metrics from the verified audit trail',
    usage: `hcgw report api-usage --from DATE --to DATE [--format csv|json] [--rotated] [--partial] <audit file...>
  Verifies the hash chain first (exit 1 and no report if it is broken), then counts per API (route) and client
  app the requests, unique patients whose data was returned and those returned more than once, and prior
  authorizations approved / denied / pended with mean and median decision time. [from, to) in UTC.`,
    load: () => import('../report.ts'),
  },
  {
    name: 'sandbox',
    summary: 'send a synthetic ADT message to an MLLP listener',
    usage: `hcgw sandbox send-adt <A01|A02|A03|A04|A08|A40> [--encounter e-p1-1] [--patient p1] [--merged-patient p9]
       [--control-id ID] [--facility SANDBOXHOSP] [--host 127.0.0.1] [--port 2575] [--timeout-ms 10000]
  Prints {sent, controlId, ack, reason?}; exit 0 on AA, 1 otherwise.`,
    load: () => import('../sandbox-adt.ts'),
  },
];
