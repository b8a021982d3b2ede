import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { exportJWK, type JWK } from 'jose';
import { parseOptions, UsageError } from '../command.ts';
import { dpopProof, generateDpopKey, importDpopKey } from '../../lib/dpop-proof.ts';

/** Where `hcgw token --dpop` keeps the key it generated, for `hcgw dpop` to sign proofs with. */
export const DEFAULT_DPOP_KEY_FILE = '.hcgw-dpop-key.json';

/**
 * For `hcgw token --dpop`: a fresh ES256 key pair, its private JWK written to `keyFile` (mode 600), and
 * the `cnf.jkt` claim that binds the token to it (RFC 9449 §6).
 */
export async function newDpopBinding(keyFile = DEFAULT_DPOP_KEY_FILE): Promise<{ cnf: { jkt: string }; keyFile: string }> {
  const key = await generateDpopKey('ES256');
  const file = resolve(keyFile);
  await writeFile(file, `${JSON.stringify({ ...(await exportJWK(key.privateKey)), alg: key.alg })}\n`, { mode: 0o600 });
  return { cnf: { jkt: key.jkt }, keyFile: file };
}

/** The line `hcgw token --dpop` prints after the token: how to call the gateway with it. */
export function dpopUsage(keyFile: string, token: string): string {
  return [
    `# DPoP-bound token (key in ${keyFile}). Every request needs a fresh proof for its method and URL:`,
    `curl -H "Authorization: DPoP ${token}" \\`,
    `     -H "DPoP: $(npx hcgw dpop --key ${keyFile} --token ${token} GET http://127.0.0.1:8080/system/erp/items)" \\`,
    `     http://127.0.0.1:8080/system/erp/items`,
  ].join('\n');
}

/** `hcgw dpop [--key f] [--token T] METHOD URL`: prints a DPoP proof JWT for one request. */
export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseOptions(args, { key: { type: 'string' }, token: { type: 'string' } }, true);
  const [method, url] = positionals;
  if (!method || !url || !/^https?:\/\//.test(url) || positionals.length > 2) throw new UsageError('give a METHOD and an absolute http(s) URL');
  let jwk: JWK & { alg?: string };
  try {
    jwk = JSON.parse(await readFile(resolve(values.key ?? DEFAULT_DPOP_KEY_FILE), 'utf8'));
  } catch {
    process.stderr.write(`cannot read the DPoP key ${values.key ?? DEFAULT_DPOP_KEY_FILE}: create one with \`hcgw token --dpop\`\n`);
    return 1;
  }
  const key = await importDpopKey(jwk, jwk.alg ?? 'ES256');
  process.stdout.write(`${await dpopProof(key, { method, url, accessToken: values.token })}\n`);
  return 0;
}
