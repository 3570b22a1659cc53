/**
 * What `--workers auto` learns from whole requests. auto.ts predicts, per request, whether the pool
 * will finish sooner than inline; the prediction sees only what can be timed before the choice.
 * Here, for each request shape, the paces (milliseconds per evaluation, from a request's first
 * evaluation to its last back) of recent requests that took the pool and of recent ones that ran
 * inline throughout are kept, and set against each other: they count what the model cannot (the
 * threads' scheduling, a client on the same cores, inline's batch loop, faster than the evaluations
 * timed one by one that the model goes by). On two cores, meshstats' dense Jacobian under `auto`
 * took the pool every time and ran at 1.5 times inline's wall time, though the model, corrected,
 * kept predicting a saving.
 *
 * Where the pool's threads and the main thread cannot have a core each (two cores), the model's
 * saving is in doubt (the threads share the cores with the main thread, its collections and often
 * the client: meshstats' dense Jacobian ran even with inline there, its grouped one slower), so the
 * first PACES requests of a shape run inline throughout unless their evaluations prove costly (a
 * fresh server's first calls took 1.2-2 times a warm one, each taking a pool still cold and
 * comparing it with inline within itself; a costly apply gains from the pool beyond doubt). Then
 * the model is asked, against their pace rather than its own timings of single evaluations (which
 * overstate inline's by half or more): at once, then as seldom as where inline is the faster route.
 * A pool it takes is measured, and the routes are set against each other as below. Elsewhere the
 * pool goes first.
 *
 * Once the pool's route has PACES paces, requests of the shape run inline throughout until inline
 * has as many too (unless the pool is CLEARLY faster than the inline pace the model measured: that
 * needs no trial), then the faster route is taken: the pool only where it saves MEASURED_GAIN of
 * inline's time. Now and then a request takes the other route, so that a change (the machine loaded,
 * or freed) is seen: the EXPLORE_EVERY-th, then twice as many later each time the faster route stays
 * the same, up to one in MOST_EXPLORE_EVERY; one in MOST_EXPLORE_EVERY from the start where inline is
 * CLEARLY faster (a meshstats Jacobian sent to the pool after idling took 5 to 13 times inline's wall
 * time: one in 16 added 40 % to the mean); never where the pool is clearly faster.
 */
export type Route = "pool" | "inline";
/**
 * What the next request of a shape does: "inline" throughout; "inline first": inline throughout
 * unless its evaluations turn out costly (then the model decides, as it would have from the first
 * request: the pool's gain is no longer in doubt); undefined: the model decides.
 */
export type NextRoute = Route | "inline first" | undefined;

/** Paces kept per route (the median decides: one request that met a collection does not). */
export const PACES = 3;
/** The pool at this share of inline's pace or less is faster beyond any doubt: inline is not tried. */
export const CLEARLY = 0.5;
/** The least share of inline's time the pool must save, measured, to be taken. */
export const MEASURED_GAIN = 0.05;
/** With both routes measured, the first request to take the slower one again, and the most between two that do. */
export const EXPLORE_EVERY = 16;
export const MOST_EXPLORE_EVERY = 256;

const median = (xs: number[]) => (xs.length < PACES ? undefined : [...xs].sort((a, b) => a - b)[xs.length >> 1]);

export class RoutePaces {
  private readonly paces: Record<Route, number[]> = { pool: [], inline: [] };
  /** The faster route when last decided, the requests since the slower one was last taken, and how many between two that take it. */
  private faster?: Route;
  private sinceExplored = 0;
  private exploreEvery = EXPLORE_EVERY;

  /** A request of this shape took `route` (the pool for any of its evaluations) at `msPerEvaluation`. */
  record(route: Route, msPerEvaluation: number): void {
    const paces = this.paces[route];
    paces.push(msPerEvaluation);
    if (paces.length > PACES) paces.shift();
  }

  /**
   * The next request's route (NextRoute): "inline" to run inline throughout, "inline first" the same
   * unless its evaluations prove costly, undefined to let the model decide (which takes the pool
   * where it predicts a saving). `modelInlineMs`: inline's pace as the model measured it, if it has;
   * `inlineFirst`: the pool's threads leave the main thread no core of its own.
   */
  next(modelInlineMs?: number, inlineFirst = false): NextRoute {
    const pool = median(this.paces.pool);
    const inline = median(this.paces.inline);
    if (pool === undefined) {
      if (!inlineFirst) return undefined;
      if (inline === undefined) return "inline first";
      // Inline measured first: the model is asked at once, then as seldom as where inline is the
      // faster; a pool it took is measured (the model asked) until it has its PACES paces.
      if (this.paces.pool.length > 0) return undefined;
      if (this.faster === undefined) [this.faster, this.sinceExplored] = ["inline", EXPLORE_EVERY - 1]; // asked at once
      return this.explore() ? undefined : "inline";
    }
    if (inline === undefined) return modelInlineMs !== undefined && pool <= CLEARLY * modelInlineMs ? undefined : "inline";
    if (pool <= CLEARLY * inline) return undefined;
    const faster: Route = pool < (1 - MEASURED_GAIN) * inline ? "pool" : "inline";
    if (faster !== this.faster) [this.faster, this.sinceExplored, this.exploreEvery] = [faster, 0, EXPLORE_EVERY];
    if (inline <= CLEARLY * pool) this.exploreEvery = MOST_EXPLORE_EVERY;
    return (this.explore() ? faster === "inline" : faster === "pool") ? undefined : "inline";
  }

  /** Whether this request takes the slower route (counted: then twice as far apart, up to MOST_EXPLORE_EVERY). */
  private explore(): boolean {
    if (++this.sinceExplored < this.exploreEvery) return false;
    [this.sinceExplored, this.exploreEvery] = [0, Math.min(2 * this.exploreEvery, MOST_EXPLORE_EVERY)];
    return true;
  }

  /**
   * Inline's measured pace while the pool's route has none (inline first): the model weighs the
   * pool against it, its own timings of single evaluations overstating inline's.
   */
  get inlineMsForModel(): number | undefined {
    return median(this.paces.pool) === undefined ? median(this.paces.inline) : undefined;
  }

  /** The paces kept (read by tests, and by whoever debugs a route). */
  get measured(): Readonly<Record<Route, readonly number[]>> {
    return this.paces;
  }
}
