import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { IncomingMessage } from 'node:http';
import type { SecureContextOptions, TlsOptions } from 'node:tls';

/** `server.tls`: the gateway's own HTTPS listener, with optional client certificates (mTLS, RFC 8705). */
export const serverTlsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['certFile', 'keyFile'],
  description: 'Serve HTTPS; with clientCertificates, clients may present certificates (mTLS-bound tokens, RFC 8705)',
  properties: {
    certFile: { type: 'string', minLength: 1, description: 'Server certificate chain (PEM), relative to routes.yaml' },
    keyFile: { type: 'string', minLength: 1, description: 'Server private key (PEM)' },
    caFile: { type: 'string', minLength: 1, description: 'CA certificates (PEM) that client certificates must chain to when clientCertificates is `require`' },
    clientCertificates: {
      enum: ['none', 'request', 'require'],
      default: 'none',
      description:
        'none: no client certificates; request: ask for one and accept any (self-signed too: a token bound by cnf x5t#S256 is what trusts it); require: the handshake fails without one that chains to caFile',
    },
    minVersion: { enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2', description: 'Lowest TLS version accepted' },
  },
} as const;

export interface ServerTlsConfig {
  certFile: string;
  keyFile: string;
  caFile?: string;
  clientCertificates?: 'none' | 'request' | 'require';
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

/** Reads the PEM files once at start (a listener's certificate changes need a restart, like its port). */
export function serverTlsOptions(config: ServerTlsConfig, configDir: string): TlsOptions & SecureContextOptions {
  const read = (f: string) => readFileSync(resolve(configDir, f));
  const mode = config.clientCertificates ?? 'none';
  return {
    cert: read(config.certFile),
    key: read(config.keyFile),
    ca: config.caFile ? read(config.caFile) : undefined,
    minVersion: config.minVersion ?? 'TLSv1.2',
    requestCert: mode !== 'none',
    rejectUnauthorized: mode === 'require',
  };
}

/**
 * DER bytes of the client certificate of this request's TLS connection, or undefined (plain HTTP, no
 * certificate presented). Used for RFC 8705 `cnf["x5t#S256"]` binding.
 */
export function clientCertificate(req: IncomingMessage): Buffer | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate(false);
  return cert && cert.raw?.length ? cert.raw : undefined;
}
