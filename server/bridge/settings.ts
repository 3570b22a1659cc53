/**
 * What `serve` knows of the bridge before loading it: whether a spec names a tesseract-core runtime,
 * and the bridge's defaults. The bridge itself (and undici with it) is required only when one is
 * served.
 */

/** How often a runtime's /health is polled. */
export const DEFAULT_HEALTH_INTERVAL_MS = 2000;

/** How often a runtime URL's host name is resolved again. */
export const DEFAULT_DNS_REFRESH_MS = 30_000;

/**
 * How long an evaluation is sent again while no runtime can be reached (a connection refused, a
 * proxy's 502 or 503) before it fails UNAVAILABLE. A tesseract-core container restarted by Docker or
 * Kubernetes refuses connections for the 5 to 20 s its Python process takes to import and bind;
 * failing at once lost every evaluation a Jacobian had done.
 */
export const DEFAULT_RUNTIME_RETRY_MS = 30_000;

/** `serve` names a tesseract-core runtime by URL (several, comma-separated). */
export function isTesseractCoreUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec.trim());
}

/**
 * How long a request whose caller gave up (cancelled, past its deadline or --eval-timeout-ms) keeps
 * its slot while its runtime computes it, unless --given-up-hold-ms says (then the larger of this
 * and --eval-timeout-ms: a runtime given that long per evaluation is given as long again to finish).
 */
export const DEFAULT_GIVEN_UP_HOLD_MS = 60_000;

/** --given-up-hold-ms as given, else the larger of DEFAULT_GIVEN_UP_HOLD_MS and `evalTimeoutMs`. */
export function givenUpHoldMs(flag: number | undefined, evalTimeoutMs = 0): number {
  return flag ?? Math.max(DEFAULT_GIVEN_UP_HOLD_MS, evalTimeoutMs);
}

/**
 * How long an answer's body may bring no byte once its head has come. A runtime answers its head
 * when apply is done (tesseract-core sends the body at once), so a body that stops (a worker stuck
 * mid-write, a proxy that lost its upstream) is no apply taking long: it held the call, and without a
 * deadline its --concurrency slot, for ever.
 */
export const DEFAULT_ANSWER_STALL_MS = 60_000;
