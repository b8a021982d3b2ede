import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';

/** A client's DPoP key pair (RFC 9449): the private key signs proofs, the public JWK goes in their header. */
export interface DpopKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  alg: string;
  /** RFC 7638 SHA-256 thumbprint: the value of the bound token's `cnf.jkt`. */
  jkt: string;
}

export async function generateDpopKey(alg = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicJwk, alg, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

export async function importDpopKey(privateJwk: JWK, alg = 'ES256'): Promise<DpopKey> {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = privateJwk;
  const privateKey = (await importJWK(privateJwk, alg)) as CryptoKey;
  return { privateKey, publicJwk, alg, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') };
}

/**
 * A DPoP proof JWT for one request: `typ: dpop+jwt`, the public key in `jwk`, the method and URL (without
 * query and fragment), a fresh `jti`, `iat`, and `ath` (hash of the access token) when one is sent.
 * Used by the CLI (`hcgw dpop`), the sandbox and the tests; the gateway itself only verifies proofs.
 */
export function dpopProof(key: DpopKey, req: { method: string; url: string; accessToken?: string; iat?: number; jti?: string }): Promise<string> {
  const u = new URL(req.url);
  const htu = `${u.protocol}//${u.host}${u.pathname}`;
  const ath = req.accessToken === undefined ? undefined : createHash('sha256').update(req.accessToken).digest('base64url');
  return new SignJWT({ htm: req.method.toUpperCase(), htu, jti: req.jti ?? randomUUID(), ...(ath ? { ath } : {}) })
    .setProtectedHeader({ alg: key.alg, typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt(req.iat ?? Math.floor(Date.now() / 1000))
    .sign(key.privateKey);
}
