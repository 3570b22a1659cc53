/**
 * What `serve` knows of the bridge before loading it: whether a spec names a tesseract-core runtime,
 * and the bridge's defaults. The bridge itself (and undici with it) is required only when one is
 * served.
 */

/** How often a runtime's /health is polled. */
export const DEFAULT_HEALTH_INTERVAL_MS = 2000;

/** How often a runtime URL's host name is resolved again. */
export const DEFAULT_DNS_REFRESH_MS = 30_000;

/** `serve` names a tesseract-core runtime by URL (several, comma-separated). */
export function isTesseractCoreUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec.trim());
}
