import type { PublicLinks } from '../http/public-links.ts';
import { writeBufferedJson, writeVerbatimJson } from '../http/respond.ts';
import type { BufferedResult, Exchange } from '../sdk/types.ts';
import { runRequestPhase, runResponsePhase } from './chain.ts';

/**
 * One exchange through its route, after the request was read: request phase → target → response phase →
 * response. The pipeline, not the target, runs the response phase, exactly once, on whatever the target
 * buffered (Envoy's filter manager runs the encoder filters, never the router filter). Then upstream URLs
 * are rewritten to public ones, an experience route's projection is applied, and the body is written.
 */
export async function runExchange(ex: Exchange, links: PublicLinks): Promise<void> {
  const route = ex.route;
  if (route.chain.request.length) await runRequestPhase(route.chain, ex);
  for (const [k, v] of Object.entries(ex.responseHeaders)) ex.res.setHeader(k, v);
  // A stored response (idempotency replay) goes through the same response phase as a fresh one.
  const result = ex.replay ? { response: ex.replay } : await route.target.handle(ex);
  if (result === 'streamed' || ex.res.destroyed) return;
  await respond(ex, result, links);
}

async function respond(ex: Exchange, result: BufferedResult, links: PublicLinks): Promise<void> {
  const { response, original } = result;
  const chain = ex.route.chain;
  // Nothing reads or reshapes the body and it names no upstream: the upstream's bytes go out as they came
  // (parsed all the same, so a malformed body is still refused), without a rewrite walk or a re-serialisation.
  const verbatim = !chain.response.length && !result.project && original !== undefined && links.verbatimSafe(original);
  if (chain.response.length) await runResponsePhase(chain, ex, response);
  // Policies judge what the upstream said; clients get addresses they can follow through the gateway.
  if (!verbatim) response.body = links.rewriteBody(response.body, ex.route, ex.req);
  links.rewriteHeaders(response.headers, ex.route, ex.req, result.upstreamUrl);
  if (result.project) response.body = result.project(response.body);
  if (verbatim) writeVerbatimJson(ex, response, original);
  else writeBufferedJson(ex, response, original);
}
