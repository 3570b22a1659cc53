/**
 * What "auto" learns from whole requests (server/eval/route-paces.ts): the route each request of a
 * shape takes, from the paces of recent requests by route.
 */
import { strict as assert } from "node:assert";
import { CLEARLY, EXPLORE_EVERY, MEASURED_GAIN, PACES, RoutePaces } from "../server/eval/route-paces";

/** The routes of `count` requests in a row ("model": left to the model). */
const routes = (paces: RoutePaces, count: number, modelInlineMs?: number) => Array.from({ length: count }, () => paces.next(modelInlineMs) ?? "model");

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
  });

  it("a pool clearly faster than the inline pace the model measured is not set against inline at all", () => {
    const paces = measured([0.002, 0.002, 0.002], []);
    assert.deepEqual(routes(paces, 40, 0.002 / CLEARLY), Array(40).fill("model"));
    // Only a little faster than the model's inline pace (which overstates inline's): tried.
    assert.equal(paces.next(0.003), "inline");
  });

  it("inline faster (or the pool saving less than MEASURED_GAIN): inline, and every EXPLORE_EVERY-th request the model's route", () => {
    for (const [pool, inline] of [[0.0055, 0.0034], [(1 - MEASURED_GAIN / 2) * 0.004, 0.004]]) {
      const paces = measured([pool, pool, pool], [inline, inline, inline]);
      const expected = Array.from({ length: 2 * EXPLORE_EVERY }, (_, k) => ((k + 1) % EXPLORE_EVERY === 0 ? "model" : "inline"));
      assert.deepEqual(routes(paces, 2 * EXPLORE_EVERY), expected, `pool ${pool}, inline ${inline}`);
    }
  });

  it("the pool faster by MEASURED_GAIN or more: the model's route, and every EXPLORE_EVERY-th request inline", () => {
    const paces = measured([0.003, 0.003, 0.003], [0.004, 0.004, 0.004]);
    const expected = Array.from({ length: 2 * EXPLORE_EVERY }, (_, k) => ((k + 1) % EXPLORE_EVERY === 0 ? "inline" : "model"));
    assert.deepEqual(routes(paces, 2 * EXPLORE_EVERY), expected);
  });

  it("the pool clearly faster than inline: never inline again", () => {
    const paces = measured([0.001, 0.001, 0.001], [0.004, 0.004, 0.004]);
    assert.deepEqual(routes(paces, 3 * EXPLORE_EVERY), Array(3 * EXPLORE_EVERY).fill("model"));
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
