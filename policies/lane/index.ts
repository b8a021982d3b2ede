import { PolicyConfigError, ServiceUnavailable, definePolicy, type SharedKey } from '../../gateway/sdk/index.ts';
import { Lane, LaneRefusal, type LaneOptions } from './lane.ts';

export type LaneConfig = LaneOptions;

/** Lanes of one compiled config by name, with the route that declared each (for conflict messages). */
const LANES: SharedKey<Map<string, { lane: Lane; route: string }>> = { name: 'lanes', create: () => new Map() };

const DETAIL: Record<string, string> = {
  'queue-full': 'This kind of request is at capacity; retry later',
  'queue-timeout': 'This kind of request waited too long for capacity; retry later',
  'client-closed': 'The client closed the request while it waited',
};

/**
 * Workload isolation: caps the requests in flight per named lane, so a burst of bulk exports cannot take the
 * upstream connections and gateway capacity that clinical reads need. Routes naming the same lane share its
 * slots within one gateway instance.
 */
export const lanePolicy = definePolicy({
  name: 'lane',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'maxConcurrent'],
    properties: {
      name: { type: 'string', pattern: '^[a-zA-Z0-9_.-]+$', description: 'Lane name; routes with the same name share its slots (and must declare the same settings)' },
      maxConcurrent: { type: 'integer', minimum: 1, maximum: 100_000, description: 'Requests of this lane in flight at once (per gateway instance)' },
      queue: { type: 'integer', minimum: 0, maximum: 100_000, default: 0, description: 'Requests that may wait for a slot; more are refused at once (503)' },
      queueTimeoutMs: { type: 'integer', minimum: 1, maximum: 60_000, default: 1000, description: 'Longest wait in the queue before 503' },
    },
  },

  create(config, ctx) {
    const lanes = ctx.shared.get(LANES);
    const existing = lanes.get(config.name);
    if (existing) {
      const o = existing.lane.options;
      if (o.maxConcurrent !== config.maxConcurrent || o.queue !== config.queue || o.queueTimeoutMs !== config.queueTimeoutMs)
        throw new PolicyConfigError(`lane "${config.name}" is declared with other settings on route "${existing.route}"`, 'name');
    } else lanes.set(config.name, { lane: new Lane({ ...config }), route: ctx.route.id });
    const lane = lanes.get(config.name)!.lane;
    const retryAfter = Object.freeze({ 'Retry-After': String(Math.max(1, Math.ceil(config.queueTimeoutMs / 1000))) });
    const refusals = new Map(
      Object.entries(DETAIL).map(([reason, detail]) => [reason, () => new ServiceUnavailable({ reason: `lane-${reason}`, detail, headers: retryAfter })]),
    );
    const refuse = (err: unknown): never => {
      if (!(err instanceof LaneRefusal)) throw err;
      ctx.metrics.laneRejected.inc({ lane: config.name, reason: err.reason });
      throw refusals.get(err.reason)!();
    };

    return {
      onRequest(ex) {
        try {
          return lane.enter(ex.res)?.catch(refuse);
        } catch (err) {
          refuse(err);
        }
      },
    };
  },
});

export default lanePolicy;
