import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

/**
 * The bench issuer: a fresh RS256 key (its JWKS written to a file the bench upstream serves) and a SMART
 * patient token for it, valid two hours, with the purpose of use the full chain's minimize allows.
 */
export async function benchToken(tmp: string): Promise<{ jwk: Record<string, unknown>; jwksFile: string; auth: Record<string, string> }> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
  const jwksFile = join(tmp, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const token = await new SignJWT({ scope: 'patient/*.rs', client_id: 'bench-client', patient: 'p1' })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench-1' })
    .setIssuer('https://bench-idp.local')
    .setAudience('hcgw-bench')
    .setSubject('bench-user')
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey);
  const auth = { authorization: `Bearer ${token}`, 'x-purpose-of-use': 'TREAT' };
  return { jwk, jwksFile, auth };
}
