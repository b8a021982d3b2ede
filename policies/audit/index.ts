import { PolicyConfigError, createRecordBuilder, ServiceUnavailable, definePolicy, type AuditConfig, type PolicyHandler } from '../../gateway/sdk/index.ts';

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
    if (config.failMode === 'closed') {
      handler.onRequest = () => {
        if (!trail.healthy) throw new ServiceUnavailable({ reason: 'audit-unavailable', detail: 'The audit trail is unavailable; try again later' });
      };
    }
    return handler;
  },
});

export default auditPolicy;
