import { parseOptions, UsageError } from '../command.ts';

/**
 * `hcgw events …`: operator commands on the running gateway's event backbone, through its admin API (one
 * process owns the event log, so the CLI never opens it behind the gateway's back).
 */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(
    args,
    {
      subscription: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      admin: { type: 'string', default: 'http://127.0.0.1:9901' },
      token: { type: 'string' },
    },
    true,
  );
  const token = values.token ?? process.env.HCGW_ADMIN_TOKEN;
  if (!token) throw new UsageError('the admin token is needed: --token or $HCGW_ADMIN_TOKEN');
  const call = async (method: string, path: string) => {
    let res: Response;
    try {
      res = await fetch(`${values.admin}/admin/events${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    } catch {
      process.stderr.write(`hcgw: cannot reach the admin API at ${values.admin} (is server.admin configured with a token and the gateway running?)\n`);
      return 1;
    }
    const body = await res.text();
    (res.ok ? process.stdout : process.stderr).write(`${body}\n`);
    return res.ok ? 0 : 1;
  };
  const [cmd, sub, id] = positionals;
  const enc = encodeURIComponent;
  if (cmd === 'resend') {
    if (!values.subscription || !values.from) throw new UsageError('resend needs --subscription and --from');
    const q = new URLSearchParams({ from: values.from, ...(values.to ? { to: values.to } : {}) });
    return call('POST', `/subscriptions/${enc(values.subscription)}/resend?${q}`);
  }
  if (cmd === 'dlq' && sub === 'list') return call('GET', `/dead-letters${values.subscription ? `?subscription=${enc(values.subscription)}` : ''}`);
  if (cmd === 'dlq' && (sub === 'retry' || sub === 'drop') && id) return call(sub === 'retry' ? 'POST' : 'DELETE', `/dead-letters/${enc(id)}${sub === 'retry' ? '/retry' : ''}`);
  throw new UsageError('events needs: resend --subscription S --from X | dlq list | dlq retry ID | dlq drop ID');
}
