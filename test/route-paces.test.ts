/**
 * What "auto" learns from whole requests (server/eval/route-paces.ts): the route each request of a
 * shape takes, from the paces of recent requests by route.
 */
import { strict as assert } from "node:assert";
import { CLEARLY, EXPLORE_EVERY, MEASURED_GAIN, MOST_EXPLORE_EVERY, PACES, RoutePaces } from "../server/eval/route-paces";

/** The routes of `count` requests in a row ("model": left to the model). */
const routes = (paces: RoutePaces, count: number, modelInlineMs?: number, inlineFirst = false) => Array.from({ length: count }, () => paces.next(modelInlineMs, inlineFirst) ?? "model");

function measured(pool: number[], inline: number[]): RoutePaces {
  const paces = new RoutePaces();
  for (const ms of pool) paces.record("pool", ms);
  for (const ms of inline) paces.record("inline", ms);
  return paces;
}

describe('"auto": routes from the paces of whole requests', () => {
  it("the model decides until the pool's route has PACES paces; then inline is tried until it has as many", () => {
    const paces = new RoutePaces();
    assert.deepEqual(routes(paces, 3), ["model", "model", "model"]);
    for (let k = 0; k < PACES - 1; k++) paces.record("pool", 0.005);
    assert.equal(paces.next(), undefined, `${PACES - 1} paces are not enough`);
    paces.record("pool", 0.005);
    assert.deepEqual(routes(paces, 3), ["inline", "inline", "inline"], "inline has no paces yet");
    paces.record("inline", 0.003);
    paces.record("inline", 0.003);
    assert.equal(paces.next(), "inline", `${PACES - 1} inline paces are not enough`);
    paces.record("inline", 0.003);
    assert.deepEqual(paces.measured, { pool: [0.005, 0.005, 0.005], inline: [0.003, 0.003, 0.003] });
    assert.equal(paces.next(), "inline", "measured, inline is the faster");
  });

  it("a pool clearly faster than the inline pace the model measured is not set against inline at all", () => {
    const paces = measured([0.002, 0.002, 0.002], []);
    assert.deepEqual(routes(paces, 40, 0.002 / CLEARLY), Array(40).fill("model"));
    // Only a little faster than the model's inline pace (which overstates inline's): tried.
    assert.equal(paces.next(0.003), "inline");
  });

  /** The requests (numbered from 1) that take `route` among `count`. */
  const taking = (paces: RoutePaces, count: number, route: string, inlineFirst = false) => routes(paces, count, undefined, inlineFirst).flatMap((r, k) => (r === route ? [k + 1] : []));
  /** The EXPLORE_EVERY-th request, then twice as far apart each time, up to MOST_EXPLORE_EVERY apart: 16, 48 (16 + 32), 112, ... */
  const TRIES = [16, 48, 112, 240, 496, 752, 1008];

  it("inline faster (or the pool saving less than MEASURED_GAIN): inline, and the model's route at the EXPLORE_EVERY-th request, then twice as far apart each time, up to MOST_EXPLORE_EVERY", () => {
    assert.deepEqual([EXPLORE_EVERY, MOST_EXPLORE_EVERY], [TRIES[0], TRIES[6] - TRIES[5]]);
    for (const [pool, inline] of [[0.0055, 0.0034], [(1 - MEASURED_GAIN / 2) * 0.004, 0.004]]) {
      assert.deepEqual(taking(measured([pool, pool, pool], [inline, inline, inline]), 1200, "model"), TRIES, `pool ${pool}, inline ${inline}`);
    }
  });

  it("the pool faster by MEASURED_GAIN or more: the model's route, and inline as often", () => {
    assert.deepEqual(taking(measured([0.003, 0.003, 0.003], [0.004, 0.004, 0.004]), 1200, "inline"), TRIES);
  });

  it("inline clearly faster (the pool at twice its pace or more): the model's route one request in MOST_EXPLORE_EVERY", () => {
    assert.deepEqual(taking(measured([0.008, 0.008, 0.008], [0.004, 0.004, 0.004]), 1200, "model"), [256, 512, 768, 1024]);
  });

  it("a change of the faster route starts the exploring anew, EXPLORE_EVERY requests on", () => {
    const paces = measured([0.005, 0.005, 0.005], [0.004, 0.004, 0.004]);
    routes(paces, 100); // explored at 16 and 48: the next at 112
    for (let k = 0; k < PACES; k++) paces.record("pool", 0.003); // the pool got faster (not clearly)
    assert.deepEqual(routes(paces, EXPLORE_EVERY), [...Array(EXPLORE_EVERY - 1).fill("model"), "inline"]);
  });

  it("the pool clearly faster than inline: never inline again", () => {
    const paces = measured([0.001, 0.001, 0.001], [0.004, 0.004, 0.004]);
    assert.deepEqual(routes(paces, 600), Array(600).fill("model"));
  });

  it("inline first: PACES requests inline (unless apply proves costly), then the model is asked at once and as seldom as where inline is the faster; it weighs the pool against inline's pace", () => {
    const paces = new RoutePaces();
    assert.deepEqual(routes(paces, 5, undefined, true), Array(5).fill("inline first"), "no inline pace yet: inline unless apply proves costly");
    for (let k = 0; k < PACES; k++) paces.record("inline", 0.003);
    assert.equal(paces.inlineMsForModel, 0.003);
    assert.deepEqual(taking(paces, 1200, "model", true), TRIES.map((t) => t - (EXPLORE_EVERY - 1)), "at once, then 32, 64, ... up to MOST_EXPLORE_EVERY requests apart");
    assert.deepEqual(routes(measured([], []), 1), ["model"], "elsewhere the pool goes first");
  });

  it("inline first: a pool the model takes is measured (the model asked) until it has PACES paces, then the paces decide", () => {
    const next = (paces: RoutePaces) => paces.next(undefined, true) ?? "model";
    for (const [pool, verdict] of [[0.002, "model"], [0.006, "inline"]] as const) {
      const paces = measured([], [0.003, 0.003, 0.003]);
      assert.equal(next(paces), "model", "asked at once");
      for (let k = 0; k < PACES; k++) {
        paces.record("pool", pool);
        if (k < PACES - 1) assert.equal(next(paces), "model", `${k + 1} pooled paces`);
      }
      assert.equal(paces.inlineMsForModel, undefined, "both measured: the model goes by its own timings");
      assert.equal(next(paces), verdict, `pool ${pool} against inline 0.003`);
    }
  });

  it("the median of the last PACES decides: one request that met a collection does not turn it, newer paces replace older ones", () => {
    const paces = measured([0.003, 0.003, 0.05], [0.004, 0.004, 0.004]);
    assert.equal(paces.next(), undefined, "one slow pooled request among three");
    // The machine got busier for the pool: three slow paces replace the fast ones.
    for (let k = 0; k < PACES; k++) paces.record("pool", 0.006);
    assert.deepEqual(paces.measured.pool, [0.006, 0.006, 0.006]);
    assert.equal(paces.next(), "inline");
  });
});
