import { createHash } from 'node:crypto';
import { ipKeyGenerator } from 'express-rate-limit';
import type { Exchange } from '../../gateway/sdk/index.ts';

export type KeyPart = 'client' | 'subject' | 'ip' | 'route';
export const KEY_PARTS: readonly KeyPart[] = ['client', 'subject', 'ip', 'route'];

/** IPv6 callers can hold a whole /64 or more: one /56 is one caller, as express-rate-limit does by default. */
const IPV6_SUBNET = 56;

const ipOf = (ex: Exchange) => `ip=${ipKeyGenerator(ex.ip, IPV6_SUBNET)}`;

/**
 * Turns the configured key parts into one function, built once in create(). A caller without the part
 * (no principal, or a token without client id) is keyed by its address instead, so anonymous callers do not
 * all share one bucket. The key is hashed: Redis never holds client ids, subjects or addresses in clear.
 */
export function compileKey(parts: readonly KeyPart[], routeId: string): (ex: Exchange) => string {
  const pieces = parts.map((part): ((ex: Exchange) => string) => {
    switch (part) {
      case 'client':
        return (ex) => (ex.principal?.clientId ? `client=${ex.principal.clientId}` : ipOf(ex));
      case 'subject':
        return (ex) => (ex.principal?.subject ? `sub=${ex.principal.issuer} ${ex.principal.subject}` : ipOf(ex));
      case 'ip':
        return ipOf;
      case 'route': {
        const route = `route=${routeId}`;
        return () => route;
      }
    }
  });
  return (ex) => {
    let text = '';
    for (const piece of pieces) text += `${piece(ex)}\n`;
    return createHash('sha256').update(text).digest('base64url').slice(0, 22);
  };
}
