import { BlockList, isIP } from 'node:net';
import { Forbidden, PolicyConfigError, definePolicy, type Policy } from '../../gateway/sdk/index.ts';

export interface IpAllowConfig {
  allow: string[];
  addHeader?: { name: string; value: string };
}

/**
 * Worked plugin example: admit only callers from listed addresses or CIDR ranges, optionally tagging
 * the upstream request. It obeys the same contract as the built-ins: a schema checked at load and a
 * create() that parses the list once into a node BlockList.
 */
export const ipAllow = definePolicy({
  name: 'ip-allow',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['allow'],
    properties: {
      allow: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'IP addresses or CIDR ranges (IPv4/IPv6) that may call the route' },
      addHeader: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'value'],
        properties: { name: { type: 'string', pattern: '^[A-Za-z0-9-]+$' }, value: { type: 'string' } },
        description: 'Header added to the upstream request for admitted callers',
      },
    },
  },
  create(config) {
    const list = new BlockList();
    config.allow.forEach((entry, i) => {
      const [addr, bits] = entry.split('/');
      const family = isIP(addr);
      if (!family || (bits !== undefined && !/^\d+$/.test(bits))) throw new PolicyConfigError(`"${entry}" is not an IP address or CIDR range`, `allow[${i}]`);
      const type = family === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(addr, type);
      else list.addSubnet(addr, Number(bits), type);
    });
    return {
      onRequest(ex) {
        // IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d.
        const ip = ex.ip.startsWith('::ffff:') ? ex.ip.slice(7) : ex.ip;
        const family = isIP(ip);
        if (!family || !list.check(ip, family === 6 ? 'ipv6' : 'ipv4')) throw new Forbidden({ reason: 'ip-not-allowed', detail: 'Caller address is not allowed' });
        if (config.addHeader) ex.upstreamHeaders[config.addHeader.name.toLowerCase()] = config.addHeader.value;
      },
    };
  },
});

export default ipAllow;
