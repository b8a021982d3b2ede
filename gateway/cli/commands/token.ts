import { parseOptions, UsageError } from '../command.ts';
import { dpopUsage, newDpopBinding } from './dpop.ts';

export async function run(args: string[]): Promise<number> {
  const { values } = parseOptions(args, {
    client: { type: 'string' },
    sub: { type: 'string' },
    scope: { type: 'string', multiple: true },
    patient: { type: 'string' },
    'fhir-user': { type: 'string' },
    aud: { type: 'string' },
    ttl: { type: 'string' },
    idp: { type: 'string' },
    dpop: { type: 'boolean' },
    'dpop-key': { type: 'string' },
  });
  const ttl = values.ttl === undefined ? undefined : Number(values.ttl);
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1)) throw new UsageError('--ttl must be a positive number of seconds');
  const idp = values.idp ?? process.env.HCGW_DEV_IDP ?? 'http://127.0.0.1:9100';
  const body = {
    clientId: values.client ?? 'dev-client',
    subject: values.sub ?? values.client ?? 'dev-user',
    scopes: (values.scope ?? []).flatMap((s) => s.split(/\s+/)).filter(Boolean),
    patient: values.patient,
    fhirUser: values['fhir-user'],
    audience: values.aud,
    expiresIn: ttl,
  };
  // RFC 9449: bound to a new key, kept in a file for `hcgw dpop` to sign each request's proof with.
  const binding = values.dpop ? await newDpopBinding(values['dpop-key'] as string | undefined) : undefined;
  if (binding) Object.assign(body, { claims: { cnf: binding.cnf } });
  let res: Response;
  try {
    res = await fetch(`${idp}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  } catch {
    process.stderr.write(`cannot reach the dev IdP at ${idp}: is the sandbox running (npm start)?\n`);
    return 1;
  }
  if (!res.ok) {
    process.stderr.write(`dev IdP answered ${res.status}\n`);
    return 1;
  }
  const json = (await res.json()) as { access_token?: string; token?: string };
  const minted = json.access_token ?? json.token ?? '';
  process.stdout.write(`${minted}\n`);
  if (binding) process.stderr.write(`${dpopUsage(binding.keyFile, minted)}\n`);
  return 0;
}
