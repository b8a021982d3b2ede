import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import express from 'express';
import fc from 'fast-check';
import { addRequestFacts, type TrustProxyFn } from '../gateway/http/request-facts.ts';

/**
 * Routed requests no longer get express's prototypes; their ip/ips/protocol/host must still be what
 * express's getters say under the same `trust proxy` setting, for any forwarding headers a client sends.
 */
function request(remote: string, headers: Record<string, string>, encrypted: boolean): IncomingMessage {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: remote });
  if (encrypted) Object.defineProperty(socket, 'encrypted', { value: true });
  const req = new IncomingMessage(socket);
  req.headers = headers;
  return req;
}

const addr = fc.oneof(fc.ipV4(), fc.constantFrom('10.0.0.1', '10.0.0.2', '127.0.0.1', '::1', '::ffff:10.0.0.3', 'not-an-ip', ''));
const settings = [false, true, 1, 2, 'loopback', '10.0.0.0/8', ['127.0.0.1', '10.0.0.2'], 'loopback, 10.0.0.1'];

test('ip, ips, protocol and host are express’s answers under every trust proxy setting', () => {
  for (const setting of settings) {
    const app = express();
    app.set('trust proxy', setting);
    const trust = app.get('trust proxy fn') as TrustProxyFn;
    fc.assert(
      fc.property(
        fc.constantFrom('127.0.0.1', '10.0.0.1', '10.0.0.2', '192.0.2.9', '::1'),
        fc.option(fc.array(addr, { maxLength: 4 }).map((a) => a.join(', ')), { nil: undefined }),
        fc.option(fc.constantFrom('https', 'http', 'https, http', ' https ', 'gopher'), { nil: undefined }),
        fc.option(fc.constantFrom('public.example', 'a.example, b.example', 'x.example:8443'), { nil: undefined }),
        fc.option(fc.constantFrom('gw.example', 'localhost:8080'), { nil: undefined }),
        fc.boolean(),
        (remote, xff, proto, xfh, host, tls) => {
          const headers: Record<string, string> = {};
          if (xff !== undefined) headers['x-forwarded-for'] = xff;
          if (proto !== undefined) headers['x-forwarded-proto'] = proto;
          if (xfh !== undefined) headers['x-forwarded-host'] = xfh;
          if (host !== undefined) headers.host = host;
          const ours = addRequestFacts(request(remote, headers, tls), trust);
          const theirs = Object.setPrototypeOf(request(remote, headers, tls), app.request) as express.Request;
          (theirs as { app?: unknown }).app = app;
          assert.deepEqual(
            { ip: ours.ip, ips: ours.ips, protocol: ours.protocol, host: ours.host },
            { ip: theirs.ip, ips: theirs.ips, protocol: theirs.protocol, host: theirs.host },
            `trust proxy ${JSON.stringify(setting)}`,
          );
        },
      ),
      { numRuns: 300 },
    );
  }
});

test('an untrusted peer cannot choose the protocol, host or client address', () => {
  const app = express();
  const trust = app.get('trust proxy fn') as TrustProxyFn;
  const facts = addRequestFacts(request('192.0.2.9', { 'x-forwarded-for': '10.9.9.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', host: 'gw.example' }, false), trust);
  assert.deepEqual({ ip: facts.ip, ips: facts.ips, protocol: facts.protocol, host: facts.host }, { ip: '192.0.2.9', ips: [], protocol: 'http', host: 'gw.example' });
});
