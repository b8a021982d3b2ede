import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import type { Policy, PolicyContext, PolicyDependencies, PolicyHandler } from './types.ts';

/** The config type a policy's create() receives: derived from its JSON Schema, defaults filled in by the compiler. */
export type ConfigOf<S> = S extends JSONSchema ? FromSchema<S> : never;

export interface PolicyDefinition<S extends JSONSchema, C> {
  /** Key used in routes.yaml: lower-case letters, digits and dashes. */
  readonly name: string;
  /** JSON Schema of the config (`additionalProperties: false`, a description and default on every field). */
  readonly configSchema: S;
  /** What the policy needs from the ones before it and gives to the ones after it (checked at load). */
  readonly dependencies?: PolicyDependencies | ((config: C) => PolicyDependencies);
  /** Config keys renamed in a release (old → new): routes.yaml keeps working, with a deprecation warning at load. */
  readonly renamedKeys?: Readonly<Record<string, string>>;
  /** All expensive work happens here, once per route at config load; the handler's phases run per request. */
  create(config: C, context: PolicyContext): PolicyHandler | Promise<PolicyHandler>;
}

/**
 * The one way to declare a policy, built-in or plugin: the config type is derived from the schema
 * (json-schema-to-ts), so schema and type cannot drift; the result is frozen, so importing a policy has no
 * side effects and nothing can change it after load. Write the schema inline, or `as const`.
 */
export function definePolicy<const S extends JSONSchema, C = FromSchema<S>>(definition: PolicyDefinition<S, C>): Policy<C> {
  return Object.freeze({ ...definition, configSchema: definition.configSchema as unknown as Record<string, unknown> }) as Policy<C>;
}
