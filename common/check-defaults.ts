/**
 * CheckGradients' defaults, decided here once: the server applies them (server/checking/request.ts)
 * and the SDK and the CLI's help state them. A value passes when |analytic − fd| ≤ atol + rtol·|fd|;
 * at most `maxEvals` apply calls; `seed` picks the sampled elements.
 */
export const CHECK_DEFAULTS = Object.freeze({ rtol: 1e-4, atol: 1e-6, maxEvals: 1000, seed: 0 });
