import { BadRequest, Forbidden } from '../sdk/errors.ts';
import type { Exchange } from '../sdk/types.ts';

/**
 * HL7 v3 PurposeOfUse codes (http://terminology.hl7.org/CodeSystem/v3-ActReason, PurposeOfUse
 * value set) the gateway accepts. A caller declares one per request.
 */
export const PURPOSE_OF_USE_CODES = [
  'TREAT', 'ETREAT', 'BTG', 'CAREMGT', 'CLINTRCH', 'POPHLTH', 'PUBHLTH', 'DISASTER', 'THREAT',
  'HPAYMT', 'CLMATTCH', 'COVAUTH', 'COVERAGE', 'ELIGDTRM', 'ELIGVER', 'ENROLLM', 'REMITADV',
  'HOPERAT', 'DONAT', 'FRAUD', 'GOV', 'HACCRED', 'HCOMPL', 'HDECD', 'HDIRECT', 'HLEGAL', 'HOUTCOMS', 'HPRGRP', 'HQUALIMP', 'HSYSADMIN',
  'MEMADMIN', 'MILCDM', 'PATADMIN', 'PATSFTY', 'PERFMSR', 'RECORDMGT', 'SYSDEV', 'HTEST', 'TRAIN',
  'HRESCH', 'HMARKT', 'PATRQT', 'FAMRQT', 'PWATRNY', 'SUPNWK', 'SUBPOE', 'LEGAL', 'COC',
] as const;
const KNOWN = new Set<string>(PURPOSE_OF_USE_CODES);

export const PURPOSE_HEADER = 'x-purpose-of-use';
export const PURPOSE_CLAIM = 'purpose_of_use';

const claimValues = (v: unknown): string[] | undefined =>
  typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;

/**
 * The purpose of use the caller declared: header `X-Purpose-Of-Use` or token claim `purpose_of_use`.
 * A claim in a signed token binds: the header may only choose among the purposes it grants. Throws 400 for
 * a malformed or unknown code and 403 for a header the token does not grant; undefined when none declared.
 */
export function declaredPurpose(ex: Exchange): string | undefined {
  const raw = ex.req.headers[PURPOSE_HEADER];
  const header = typeof raw === 'string' ? raw.trim() : undefined;
  if (header !== undefined && !KNOWN.has(header)) throw new BadRequest({ detail: 'X-Purpose-Of-Use must be one HL7 PurposeOfUse code', reason: 'purpose-invalid' });
  const granted = claimValues(ex.principal?.claims[PURPOSE_CLAIM])?.filter((c) => KNOWN.has(c));
  if (!granted) return header;
  if (header !== undefined) {
    if (!granted.includes(header)) throw new Forbidden({ detail: 'The declared purpose of use is not granted by the access token', reason: 'purpose-not-granted' });
    return header;
  }
  return granted.length === 1 ? granted[0] : undefined;
}

/** `ex.purposeOfUse`, resolved once per exchange by whichever policy asks first. */
export function purposeOf(ex: Exchange): string | undefined {
  return (ex.purposeOfUse ??= declaredPurpose(ex));
}
