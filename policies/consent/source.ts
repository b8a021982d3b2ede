import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PolicyConfigError, type Exchange, type UpstreamClient } from '../../gateway/sdk/index.ts';
import { isBundle, isResource, patientOf } from '../../gateway/lib/fhir-bundle.ts';
import type { Consent } from './evaluate.ts';

/** Where a patient's Consent resources come from. Rejects when they cannot be determined. */
export interface ConsentSource {
  forPatient(patientId: string, ex: Exchange): Promise<readonly Consent[]>;
}

export class ConsentLookupFailed extends Error {
  override name = 'ConsentLookupFailed';
}

/** Consents of one patient out of a Bundle or array; a consent about someone else is never used. */
function consentsOf(doc: unknown, patientId?: string): Consent[] {
  const all = isBundle(doc) ? (doc.entry ?? []).map((e) => (e as { resource?: unknown })?.resource) : Array.isArray(doc) ? doc : [];
  return all.filter((r): r is Consent => isResource(r) && r.resourceType === 'Consent' && (patientId === undefined || patientOf(r) === patientId));
}

/** A fixed set of consents read once at load (tests, air-gapped demos). */
export function fileConsentSource(file: string, configDir: string): ConsentSource {
  let all: Consent[];
  try {
    all = consentsOf(JSON.parse(readFileSync(resolve(configDir, file), 'utf8')));
  } catch (err) {
    throw new PolicyConfigError(`consent file cannot be read as JSON (${(err as NodeJS.ErrnoException).code ?? 'parse error'})`, 'source.file');
  }
  return { forPatient: async (id) => all.filter((c) => patientOf(c) === id) };
}

export interface CacheOptions {
  ttlMs: number;
  maxEntries: number;
}

/**
 * `GET <path>?patient=<id>` on the EHR, cached per patient for a short time in a bounded LRU (consent
 * changes take effect within ttlMs). Concurrent look-ups of one patient share one upstream call; failures
 * are never cached.
 */
export function upstreamConsentSource(upstream: UpstreamClient, path: string, cache: CacheOptions, now: () => number): ConsentSource {
  const entries = new Map<string, { at: number; consents: readonly Consent[] }>();
  const pending = new Map<string, Promise<readonly Consent[]>>();

  const fetchConsents = async (id: string, ex: Exchange): Promise<readonly Consent[]> => {
    let res;
    try {
      res = await upstream.call({ method: 'GET', path, query: new URLSearchParams({ patient: id, status: 'active' }) }, ex);
    } catch (err) {
      throw new ConsentLookupFailed('consent upstream unreachable', { cause: err });
    }
    if (res.status !== 200 || !isBundle(res.body)) throw new ConsentLookupFailed(`consent upstream answered ${res.status}`);
    return Object.freeze(consentsOf(res.body, id));
  };

  return {
    forPatient(id, ex) {
      const hit = entries.get(id);
      if (hit && now() - hit.at < cache.ttlMs) {
        entries.delete(id);
        entries.set(id, hit);
        return Promise.resolve(hit.consents);
      }
      let p = pending.get(id);
      if (!p) {
        p = fetchConsents(id, ex)
          .then((consents) => {
            if (cache.ttlMs > 0) {
              entries.delete(id);
              entries.set(id, { at: now(), consents });
              while (entries.size > cache.maxEntries) entries.delete(entries.keys().next().value!);
            }
            return consents;
          })
          .finally(() => pending.delete(id));
        pending.set(id, p);
      }
      return p;
    },
  };
}
