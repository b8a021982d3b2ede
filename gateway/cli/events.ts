import { parseArgs } from 'node:util';

export const EVENTS_USAGE = `  events resend --subscription S --from <seq|ISO time> [--to <seq|time>]
                                                         deliver a subscription's events again (through the admin API)
  events dlq list [--subscription S] | dlq retry ID | dlq drop ID
                                                         dead letters: list (metadata only), deliver again, or drop
                                                         (events options: --admin URL, default http://127.0.0.1:9901;
                                                         --token T, default $HCGW_ADMIN_TOKEN)
`;

/**
 * `hcgw events …`: operator commands on the running gateway's event backbone, through its admin API (one
 * process owns the event log, so the CLI never opens it behind the gateway's back).
 */
export async function eventsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      subscription: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      admin: { type: 'string', default: 'http://127.0.0.1:9901' },
      token: { type: 'string' },
    },
  });
  const token = values.token ?? process.env.HCGW_ADMIN_TOKEN;
  if (!token) throw Object.assign(new Error('the admin token is needed: --token or $HCGW_ADMIN_TOKEN'), { code: 'ERR_PARSE_ARGS_USAGE' });
  const call = async (method: string, path: string) => {
    let res: Response;
    try {
      res = await fetch(`${values.admin}/admin/events${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    } catch {
      process.stderr.write(`hcgw: cannot reach the admin API at ${values.admin} (is server.admin configured and the gateway running?)\n`);
      return 1;
    }
    const body = await res.text();
    (res.ok ? process.stdout : process.stderr).write(`${body}\n`);
    return res.ok ? 0 : 1;
  };
  const [cmd, sub, id] = positionals;
  const enc = encodeURIComponent;
  if (cmd === 'resend') {
    if (!values.subscription || !values.from) throw Object.assign(new Error('resend needs --subscription and --from'), { code: 'ERR_PARSE_ARGS_USAGE' });
    const q = new URLSearchParams({ from: values.from, ...(values.to ? { to: values.to } : {}) });
    return call('POST', `/subscriptions/${enc(values.subscription)}/resend?${q}`);
  }
  if (cmd === 'dlq' && sub === 'list') return call('GET', `/dead-letters${values.subscription ? `?subscription=${enc(values.subscription)}` : ''}`);
  if (cmd === 'dlq' && sub === 'retry' && id) return call('POST', `/dead-letters/${enc(id)}/retry`);
  if (cmd === 'dlq' && sub === 'drop' && id) return call('DELETE', `/dead-letters/${enc(id)}`);
  throw Object.assign(new Error('unknown events command'), { code: 'ERR_PARSE_ARGS_USAGE' });
}
