import { PolicyConfigError, createRecordBuilder, ServiceUnavailable, definePolicy, type AuditConfig, type Exchange, type PolicyHandler } from '../../gateway/sdk/index.ts';

export interface AuditPolicyConfig {
  hashSubject: 'patient-context' | 'always';
  failMode: 'open' | 'closed';
}

/**
 * One tamper-evident record per request — allowed or refused by any policy of the chain — written in the
 * log phase, after the response. The sinks and the hash chain belong to the gateway (top-level `audit:`),
 * so every route shares one chain and a config reload continues it.
 */
export const auditPolicy = definePolicy({
  name: 'audit',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      hashSubject: {
        enum: ['patient-context', 'always'],
        default: 'patient-context',
        description: "patient-context: the caller's subject, fhirUser and address are HMAC-hashed when the token acts as or for a patient; always: hash them for every caller",
      },
      failMode: {
        enum: ['open', 'closed'],
        default: 'open',
        description: 'closed: answer 503 while the audit trail is losing records (a sink buffer overflowed); open: keep serving and count the loss',
      },
    },
  },
  create(config, ctx) {
    const section = ctx.section<AuditConfig>('audit');
    if (!section) throw new PolicyConfigError('needs a top-level `audit:` section (hashKey and at least one sink)');
    const lease = ctx.audit.acquire(section, ctx.configDir);
    const trail = lease.trail;
    const build = createRecordBuilder({ hashKey: section.hashKey, source: trail.source, hashSubject: config.hashSubject });
    const handler: PolicyHandler = {
      onLog(ex) {
        trail.append(build(ex));
      },
      close: () => lease.release(),
    };
    if (trail.durability === 'before-response') {
      // The record is written while the response's end is held back; the log phase then only records
      // exchanges that never reached their end (the client left mid-response).
      const recorded = new WeakSet<Exchange>();
      handler.beforeRelease = (ex) => {
        recorded.add(ex);
        return trail.appendWritten(build(releasing(ex)));
      };
      handler.onLog = (ex) => {
        if (!recorded.has(ex)) trail.append(build(ex));
      };
    }
    if (config.failMode === 'closed') {
      handler.onRequest = () => {
        if (!trail.healthy) throw new ServiceUnavailable({ reason: 'audit-unavailable', detail: 'The audit trail is unavailable; try again later' });
      };
    }
    return handler;
  },
});

/**
 * The exchange as it will be once released: its status is final and the response is whole (the record
 * is written just before the held-back end goes out, and a response that cannot be released has none).
 */
function releasing(ex: Exchange): Exchange {
  const res = Object.create(ex.res, { writableFinished: { value: true } }) as Exchange['res'];
  return Object.create(ex, { res: { value: res }, status: { value: ex.status ?? ex.res.statusCode } }) as Exchange;
}

export default auditPolicy;
