import { createHash } from 'node:crypto';
import { PolicyConfigError, BadRequest, Conflict, GatewayError, ServiceUnavailable, Unprocessable, definePolicy, isStoreFailure, type Exchange, type Policy, type PolicyHandler, type ResponseBody } from '../../gateway/sdk/index.ts';
import { DURATION_PATTERN, parseDuration } from '../../gateway/lib/duration.ts';
import { decodeRecord, type DoneRecord, type StoredRecord } from './record.ts';

export interface IdempotencyConfig {
  ttl: string;
  lockTtl: string;
  required: boolean;
  failMode: 'open' | 'closed';
  replayHeaders: string[];
  maxStoredBytes: number;
}

/** Methods whose repeats have effects: only these are deduplicated (GET, HEAD, OPTIONS pass untouched). */
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** IETF draft-ietf-httpapi-idempotency-key-header: a short opaque string; we accept visible ASCII. */
const KEY = /^[\x21-\x7e]{1,255}$/;
/** Upstream failures that prove the request never reached it: the key is released for a retry. */
const NOT_SENT = new Set(['connect', 'circuit-open']);

interface Claim {
  key: string;
  fp: string;
  /** A final record was written (or replaying): nothing left to do in the log phase. */
  settled: boolean;
}

export const idempotencyPolicy = definePolicy({
  name: 'idempotency',
  // Keys are scoped to the caller, and a stored response must be the one the caller was allowed to see.
  dependencies: { requires: ['principal'], after: ['minimized-body', 'consent-filtered-body', 'compartment-filtered-body'] },
  // 0.2 spelled the store fail mode `fail`; every policy now says `failMode`.
  renamedKeys: { fail: 'failMode' },
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      ttl: { type: 'string', pattern: DURATION_PATTERN, default: '24h', description: 'How long a first response is kept and replayed for repeats of its key' },
      lockTtl: {
        type: 'string',
        pattern: DURATION_PATTERN,
        default: '60s',
        description: 'How long a request in flight holds its key (repeats meanwhile get 409); longer than the upstream timeout with its retries',
      },
      required: { type: 'boolean', default: false, description: 'Refuse POST/PUT/PATCH/DELETE requests without an Idempotency-Key header (400)' },
      failMode: {
        enum: ['open', 'closed'],
        default: 'closed',
        description: 'When the shared store is down: closed refuses keyed requests (503), open lets them through without deduplication',
      },
      replayHeaders: {
        type: 'array',
        uniqueItems: true,
        items: { type: 'string', pattern: '^[A-Za-z0-9-]+$' },
        default: ['content-type', 'location', 'content-location', 'last-modified', 'cache-control'],
        description: 'Response headers stored with the first response and sent again on replays',
      },
      maxStoredBytes: {
        type: 'integer',
        minimum: 1024,
        maximum: 16777216,
        default: 1048576,
        description: 'Larger responses are not stored: their repeats get 409 instead of a replay (the upstream still runs once)',
      },
    },
  },
  create(config, ctx) {
    const ttlMs = parseDuration(config.ttl);
    const lockMs = parseDuration(config.lockTtl);
    if (lockMs > ttlMs) throw new PolicyConfigError('must not be longer than ttl', 'lockTtl');
    if (!ctx.route.methods.some((m) => UNSAFE.has(m))) throw new PolicyConfigError(`route ${ctx.route.id} has no POST, PUT, PATCH or DELETE method to deduplicate`);
    const { store, logger, metrics } = ctx;
    const replayHeaders = config.replayHeaders.map((h) => h.toLowerCase());
    const routeId = ctx.route.id;

    /** Keys are per route and per caller, hashed so that neither the key nor the caller lands in the store. */
    const storeKey = (ex: Exchange, key: string) => {
      const p = ex.principal;
      const scope = JSON.stringify([routeId, p?.issuer ?? '', p?.clientId ?? '', p?.subject ?? '', key]);
      return `idem:${createHash('sha256').update(scope).digest('base64url')}`;
    };
    const fingerprint = (ex: Exchange) =>
      createHash('sha256')
        .update(`${ex.method}\u0000${ex.req.url ?? ''}\u0000`)
        .update(ex.body ?? Buffer.alloc(0))
        .digest('base64url');

    const storeFailed = (err: unknown, ex: Exchange): void => {
      metrics.storeFailures.inc({ policy: 'idempotency', mode: config.failMode });
      logger.warn('idempotency store unavailable', { route: routeId, requestId: ex.id, mode: config.failMode, error: err });
      if (config.failMode === 'closed') {
        throw new ServiceUnavailable({ detail: 'Idempotency keys cannot be checked right now', reason: 'idempotency-store-unavailable', headers: { 'Retry-After': '1' } });
      }
      ex.decisions.push({ policy: 'idempotency', outcome: 'allow', reason: 'store-unavailable-fail-open' });
    };

    const save = async (ex: Exchange, claim: Claim, record: DoneRecord) => {
      claim.settled = true;
      let text = JSON.stringify(record);
      if (Buffer.byteLength(text) > config.maxStoredBytes) text = JSON.stringify({ v: 1, state: 'done', fp: record.fp, kind: 'opaque', status: record.status });
      try {
        await store.set(claim.key, text, { ttlMs });
      } catch (err) {
        // The side effect happened; the key stays locked until lockTtl, so repeats get 409, not a second run.
        metrics.storeFailures.inc({ policy: 'idempotency', mode: 'unsaved' });
        logger.error('idempotent response not stored', { route: routeId, requestId: ex.id, error: err });
      }
    };

    const replay = (ex: Exchange, record: DoneRecord): void => {
      ex.responseHeaders['Idempotent-Replayed'] = 'true';
      ex.decisions.push({ policy: 'idempotency', outcome: 'modify', reason: 'replayed' });
      if (record.kind === 'response') {
        ex.replay = { status: record.status, headers: { ...record.headers }, body: record.body };
        return;
      }
      if (record.kind === 'problem') {
        throw new GatewayError(record.code, record.status, record.title, { detail: record.detail, extensions: record.extensions, reason: 'idempotent-replay' });
      }
      throw new Conflict({ detail: 'This Idempotency-Key was already used; its response cannot be replayed', reason: 'idempotency-not-replayable' });
    };

    const handler: PolicyHandler = {
      needsResponseBody: true,
      async onRequest(ex) {
        if (!UNSAFE.has(ex.method)) return;
        const raw = ex.req.headers['idempotency-key'];
        if (raw === undefined) {
          if (config.required) throw new BadRequest({ detail: 'This API requires an Idempotency-Key header', reason: 'idempotency-key-missing' });
          return;
        }
        if (typeof raw !== 'string' || !KEY.test(raw)) throw new BadRequest({ detail: 'Idempotency-Key must be 1 to 255 visible ASCII characters', reason: 'idempotency-key-invalid' });
        const key = storeKey(ex, raw);
        const fp = fingerprint(ex);
        const pending = JSON.stringify({ v: 1, state: 'pending', fp } satisfies StoredRecord);
        // Two rounds: a record that expires between our SET NX and our GET is simply taken on the second.
        for (let round = 0; round < 2; round++) {
          let record: StoredRecord | undefined;
          try {
            if (await store.set(key, pending, { ttlMs: lockMs, onlyIfAbsent: true })) {
              ex.locals.set(handler, { key, fp, settled: false } satisfies Claim);
              return;
            }
            record = decodeRecord(await store.get(key));
          } catch (err) {
            // Only an outage of the store takes the fail mode; a fault elsewhere must not run the request unguarded.
            if (!isStoreFailure(err)) throw err;
            return storeFailed(err, ex);
          }
          if (record === undefined) continue;
          if (record.fp && record.fp !== fp) throw new Unprocessable({ detail: 'This Idempotency-Key was already used for a different request', reason: 'idempotency-key-reused' });
          if (record.state === 'done') return replay(ex, record);
          break;
        }
        throw new Conflict({ detail: 'A request with this Idempotency-Key is still in progress', reason: 'idempotency-in-flight', headers: { 'Retry-After': '1' } });
      },
      /** Stores what the client is about to receive, before it receives it, so an immediate repeat is a replay. */
      async onResponse(ex, response: ResponseBody) {
        const claim = ex.locals.get(handler) as Claim | undefined;
        if (!claim || claim.settled) return;
        const headers: Record<string, string> = {};
        for (const h of replayHeaders) {
          const v = response.headers[h];
          if (typeof v === 'string') headers[h] = v;
        }
        await save(ex, claim, { v: 1, state: 'done', fp: claim.fp, kind: 'response', status: response.status, headers, body: response.body });
      },
      /**
       * Whatever ended the exchange without a stored response: if the upstream never saw the request (a
       * policy denied it, connection refused, breaker open), the key is released so the client can retry;
       * otherwise the outcome is final — an error is replayed as it was, a response we could not read
       * (not JSON) answers repeats with 409.
       */
      async onLog(ex) {
        const claim = ex.locals.get(handler) as Claim | undefined;
        if (!claim || claim.settled) return;
        const u = ex.upstream;
        if (u.status === undefined && (u.error === undefined || NOT_SENT.has(u.error))) {
          claim.settled = true;
          await store.del(claim.key).catch((err: unknown) => logger.warn('idempotency key not released', { route: routeId, requestId: ex.id, error: err }));
          return;
        }
        const e = ex.error;
        const record: DoneRecord = e
          ? { v: 1, state: 'done', fp: claim.fp, kind: 'problem', code: e.code, status: e.status, title: e.title, detail: e.detail, extensions: e.extensions }
          : { v: 1, state: 'done', fp: claim.fp, kind: 'opaque', status: ex.status ?? 502 };
        await save(ex, claim, record);
      },
    };
    return handler;
  },
});

export default idempotencyPolicy;
