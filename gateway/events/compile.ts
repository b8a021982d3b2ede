import type { CompiledChain, RouteConfig, RouteInfo } from '../sdk/types.ts';
import type { ConfigIssue } from '../config/errors.ts';
import type { ChainEntry } from '../config/chain-order.ts';
import type { EventsConfig } from './config.ts';
import { subscriptionRoute } from './event-exchange.ts';
import { EventSchemas } from './schemas.ts';
import { createSender } from './senders.ts';
import type { CompiledSubscription } from './worker.ts';

/** The `events:` section compiled with the rest of the config: schemas, and each subscription's chain and sender. */
export interface CompiledEvents {
  readonly config: EventsConfig;
  readonly schemas: EventSchemas;
  readonly subscriptions: ReadonlyMap<string, CompiledSubscription>;
  close(): Promise<void>;
}

type ChainCompiler = (entries: Array<Record<string, unknown>>, base: string, info: RouteInfo, extra: [], given: ChainEntry) => Promise<{ chain: CompiledChain; names: string[] } | undefined>;

/** The subscription itself names its subscriber: the chain starts with `principal` established. */
const subscriberEntry = (base: string): ChainEntry => ({
  name: 'subscriber',
  path: base,
  config: {},
  policy: { name: 'subscriber', configSchema: {}, dependencies: { provides: ['principal'] }, create: () => ({}) },
});

/** `sla.breached` is the backbone's own event: its schema is always declared. */
const BUILT_IN_SCHEMAS = {
  'sla.breached': {
    '1': {
      type: 'object',
      required: ['rule', 'start', 'expect', 'correlation', 'startedAt'],
      additionalProperties: false,
      properties: { rule: { type: 'string' }, start: { type: 'string' }, expect: { type: 'string' }, correlation: { type: 'string' }, startedAt: { type: 'string' } },
    },
  },
};

export async function compileEvents(section: EventsConfig | undefined, compileChain: ChainCompiler, issues: ConfigIssue[]): Promise<CompiledEvents | undefined> {
  if (!section) return undefined;
  let schemas: EventSchemas;
  try {
    schemas = new EventSchemas({ ...section.schemas, ...BUILT_IN_SCHEMAS });
  } catch (err) {
    issues.push({ path: 'events.schemas', message: `schema does not compile: ${(err as Error).message.split('\n')[0]}` });
    return undefined;
  }
  const subscriptions = new Map<string, CompiledSubscription>();
  for (const [i, sub] of section.subscriptions.entries()) {
    const base = `events.subscriptions[${i}]`;
    if (subscriptions.has(sub.id)) issues.push({ path: `${base}.id`, message: `duplicate subscription id "${sub.id}"` });
    // JetStream orders by partition, and events are partitioned by `partitionkey` (else `patient`) when published.
    if (section.engine.kind === 'jetstream' && sub.orderBy !== 'partitionkey') issues.push({ path: `${base}.orderBy`, message: 'the jetstream engine orders by `partitionkey` (else `patient`) only' });
    sub.filter.types.forEach((t, ti) => schemas.has(t) || issues.push({ path: `${base}.filter.types[${ti}]`, message: `no schema is declared for event type "${t}" (events.schemas)` }));
    const info: RouteInfo = { id: `subscription:${sub.id}`, layer: 'event', methods: ['GET'], path: `/events/subscriptions/${sub.id}`, fhir: sub.fhir ? { resourceType: sub.fhir.resourceType, interaction: 'read' } : undefined, targetConfig: { route: sub.id } };
    const built = await compileChain(sub.policies, base, info, [], subscriberEntry(base));
    if (!built) continue;
    subscriptions.set(sub.id, Object.freeze({ config: sub, route: subscriptionRoute(sub, built.chain, built.names), sender: await createSender(sub) }));
  }
  return Object.freeze({
    config: section,
    schemas,
    subscriptions,
    async close() {
      await Promise.allSettled([...subscriptions.values()].map((s) => s.sender.close?.()));
    },
  });
}

/** `hcgw validate` rejects a route that emits (or accepts) an event type with no declared schema. */
export function checkEmittedTypes(routes: readonly RouteConfig[], events: CompiledEvents | undefined, issues: ConfigIssue[]): void {
  routes.forEach((rc, ri) => {
    const uses: Array<[string, string]> = [];
    if (rc?.emit?.type) uses.push([`routes[${ri}].emit.type`, rc.emit.type]);
    if (rc?.layer === 'event') ((rc.target as { types?: string[] }).types ?? []).forEach((t, ti) => uses.push([`routes[${ri}].target.types[${ti}]`, t]));
    if (rc?.layer === 'event' && !events) uses.push([`routes[${ri}].layer`, '']);
    for (const [path, type] of uses) {
      if (!events) issues.push({ path, message: 'needs a top-level `events:` section (event backbone)' });
      else if (!events.schemas.has(type)) issues.push({ path, message: `no schema is declared for event type "${type}" (events.schemas)` });
    }
  });
}
