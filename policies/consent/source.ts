import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import { PolicyConfigError, type Exchange, type UpstreamClient } from '../../gateway/sdk/index.ts';
import { isBundle, isResource } from '../../gateway/lib/fhir-bundle.ts';
import { patientIdOfReference, referenceString } from '../../gateway/lib/fhir-reference.ts';
import type { Consent } from './evaluate.ts';

/** Where a patient's Consent resources come from. Rejects when they cannot be determined. */
export interface ConsentSource {
  forPatient(patientId: string, ex: Exchange): Promise<readonly Consent[]>;
}

export class ConsentLookupFailed extends Error {
  override name = 'ConsentLookupFailed';
}

/** The consent search has more pages than the gateway reads, or a `next` link it will not follow. */
export class ConsentIncomplete extends ConsentLookupFailed {
  override name = 'ConsentIncomplete';
}

/** Pages of one patient's Consent search read at most; a longer search cannot be evaluated in full. */
export const MAX_CONSENT_PAGES = 20;

const consentPatient = (c: Consent) => patientIdOfReference(referenceString(c.patient) ?? '');

/** Consents of one patient out of a Bundle or array; a consent about someone else is never used. */
function consentsOf(doc: unknown, patientId?: string): Consent[] {
  const all = isBundle(doc) ? (doc.entry ?? []).map((e) => (e as { resource?: unknown })?.resource) : Array.isArray(doc) ? doc : [];
  return all.filter((r): r is Consent => isResource(r) && r.resourceType === 'Consent' && (patientId === undefined || consentPatient(r) === patientId));
}

/** A fixed set of consents read once at load (tests, air-gapped demos). */
export function fileConsentSource(file: string, configDir: string): ConsentSource {
  let all: Consent[];
  try {
    all = consentsOf(JSON.parse(readFileSync(resolve(configDir, file), 'utf8')));
  } catch (err) {
    throw new PolicyConfigError(`consent file cannot be read as JSON (${(err as NodeJS.ErrnoException).code ?? 'parse error'})`, 'source.file');
  }
  return { forPatient: async (id) => all.filter((c) => consentPatient(c) === id) };
}

export interface CacheOptions {
  ttlMs: number;
  maxEntries: number;
}

/**
 * The query of a Bundle's `next` link, to be asked of the same upstream and path. The gateway never
 * connects where a link points: only a link to the consent search path that still names this patient
 * (and nobody else) is followed; any other `next` means pages the gateway cannot read → incomplete.
 */
function nextQuery(bundle: Record<string, unknown>, path: string, patientId: string): URLSearchParams | undefined {
  const next = Array.isArray(bundle.link) ? bundle.link.find((l) => (l as { relation?: unknown })?.relation === 'next') : undefined;
  if (next === undefined) return undefined;
  const url = (next as { url?: unknown }).url;
  let parsed: URL | undefined;
  try {
    parsed = typeof url === 'string' ? new URL(url, 'http://upstream.invalid') : undefined;
  } catch {
    parsed = undefined;
  }
  const patients = parsed?.searchParams.getAll('patient') ?? [];
  if (!parsed || !parsed.pathname.endsWith(path) || patients.length !== 1 || (patients[0] !== patientId && patientIdOfReference(patients[0]) !== patientId)) {
    throw new ConsentIncomplete('consent search links to a page the gateway does not follow');
  }
  return parsed.searchParams;
}

/**
 * `GET <path>?patient=<id>` on the EHR, every page of it (bounded), cached per patient for a short time in
 * a bounded LRU (consent changes take effect within ttlMs). Concurrent look-ups of one patient share one
 * upstream call (lru-cache fetch coalescing); failures are never cached.
 */
export function upstreamConsentSource(upstream: UpstreamClient, path: string, cache: CacheOptions): ConsentSource {
  const page = async (query: URLSearchParams, ex: Exchange) => {
    let res;
    try {
      res = await upstream.call({ method: 'GET', path, query, headers: { accept: 'application/fhir+json' } }, ex);
    } catch (err) {
      throw new ConsentLookupFailed('consent upstream unreachable', { cause: err });
    }
    if (res.status !== 200 || !isBundle(res.body)) throw new ConsentLookupFailed(`consent upstream answered ${res.status}`);
    return res.body;
  };

  const fetchConsents = async (id: string, ex: Exchange): Promise<readonly Consent[]> => {
    const consents: Consent[] = [];
    let query: URLSearchParams | undefined = new URLSearchParams({ patient: id, status: 'active' });
    for (let n = 0; query; n++) {
      if (n === MAX_CONSENT_PAGES) throw new ConsentIncomplete(`consent search has more than ${MAX_CONSENT_PAGES} pages`);
      const bundle = await page(query, ex);
      consents.push(...consentsOf(bundle, id));
      query = nextQuery(bundle, path, id);
    }
    return Object.freeze(consents);
  };

  if (cache.ttlMs === 0) return { forPatient: fetchConsents };
  const lru = new LRUCache<string, readonly Consent[], Exchange>({
    max: cache.maxEntries,
    ttl: cache.ttlMs,
    fetchMethod: (id, _stale, { context }) => fetchConsents(id, context),
  });
  return {
    async forPatient(id, ex) {
      const consents = await lru.fetch(id, { context: ex });
      if (consents === undefined) throw new ConsentLookupFailed('consent look-up aborted');
      return consents;
    },
  };
}
