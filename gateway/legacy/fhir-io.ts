import { BadRequest } from '../sdk/errors.ts';
import type { Exchange } from '../sdk/types.ts';
import { requestJson } from '../targets/process.ts';

/** The request body as JSON (415 for a non-JSON type, 400 when malformed, as process routes); required here. */
export function readJsonBody(ex: Exchange): unknown {
  const json = requestJson(ex);
  if (json === undefined) throw new BadRequest({ detail: 'This operation expects a FHIR JSON body', reason: 'missing-body' });
  return json;
}

export const fhirJson = () => ({ 'content-type': 'application/fhir+json; charset=utf-8', 'cache-control': 'no-store' });
