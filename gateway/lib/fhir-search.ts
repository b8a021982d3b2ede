import { BadRequest } from '../sdk/errors.ts';
import type { Exchange } from '../sdk/types.ts';

/** FHIR search values: a comma is an OR, `\,` an escaped comma inside one value. */
export function splitValues(value: string): string[] {
  return value.split(/(?<!\\),/);
}

/**
 * Policies that reason about search parameters (SMART constraints, the patient compartment) read them
 * from the query only. A `POST _search` form body would carry parameters they never saw, so on such
 * routes a search with a body is refused rather than forwarded.
 */
export function refuseSearchBody(ex: Exchange): void {
  if (ex.body?.length) throw new BadRequest({ reason: 'search-in-body', detail: 'Search parameters are accepted only in the query string' });
}
