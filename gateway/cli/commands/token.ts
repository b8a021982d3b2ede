import { parseOptions, UsageError } from '../command.ts';

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
  process.stdout.write(`${json.access_token ?? json.token}\n`);
  return 0;
}
