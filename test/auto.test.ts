/**
 * "auto" (server/eval/auto.ts) against what it measures, with fakes for inline apply and the pool:
 * a pool far slower than modelled (as a dense row stream on two cores is: the main thread's own
 * work, which the model does not see, bounds it) is compared with inline within the request and
 * dropped when inline is faster; a pool that keeps the model's pace is kept, and never compared; a
 * request's measured costs are remembered by its shapes and scalars.
 * The paces involved differ by several times, so a loaded machine does not turn the outcome.
 */
import { strict as assert } from "node:assert";
import { AutoEvaluator, PoolCorrection, REMEASURE_EVERY, WARM_EVALUATIONS, threadsForJob, type AutoPool, type InlineCosts, type PoolCosts } from "../server/eval/auto";
import type { WorkerPool } from "../server/eval/pool";
import { PoolEvaluator } from "../server/eval/pool-evaluator";
import { ElementPairsBuilder, pairCount } from "../server/eval/element-pairs";
import type { ElementPairs, Evaluator, OutputInfo, Perturbation } from "../server/eval/evaluator";
import type { InlineEvaluator } from "../server/eval/inline";
import type { InputLeaf } from "../server/eval/input-leaf";
import { requestShapes } from "../server/eval/backends";
import { PACES, RoutePaces } from "../server/eval/route-paces";
import ndarray from "ndarray";
import { loadTesseract } from "../index";
import type { TesseractRuntime } from "../server/runtime";
import { Algorithm, SparsityMode } from "../client";
import { sampleMeshInputs } from "../server/tesseracts/samples";

const OUTPUTS: OutputInfo[] = [{ path: "y", shape: [], datatype: 11 }];

/** What every route must answer: f(x) = x at the pair's one element, so each difference is plus - minus. */
function expected(pairs: ElementPairs): Float64Array {
  return Float64Array.from({ length: pairCount(pairs) }, (_, k) => pairs.plus[pairs.starts[k]] - pairs.minus[pairs.starts[k]]);
}

/** Inline apply that takes `msPerEvaluation` of the thread's time (as a real apply does), its first call `stallMs` more. */
class FakeInline {
  calls = 0;
  readonly outputs = OUTPUTS;
  readonly concurrency = 1;

  constructor(
    private readonly msPerEvaluation: number,
    private stallMs = 0,
  ) {}

  private work(evaluations: number): void {
    const end = performance.now() + evaluations * this.msPerEvaluation + this.stallMs;
    this.stallMs = 0;
    while (performance.now() < end);
    this.calls += evaluations;
  }

  async evaluate(perturbation: Perturbation): Promise<Float64Array[]> {
    this.work(1);
    const change = perturbation[0] as { value: number };
    return [Float64Array.of(change.value)];
  }

  async differences(pairs: ElementPairs): Promise<Float64Array> {
    this.work(2 * pairCount(pairs));
    return expected(pairs);
  }

  async differencesUntil(pairs: ElementPairs): Promise<{ values: Float64Array; done: number }> {
    return { values: await this.differences(pairs), done: pairCount(pairs) };
  }

  /** No event loop turns (InlineEvaluator.turn): the pace is the test's own. */
  turn(): undefined {
    return undefined;
  }
}

/**
 * A pool whose calls of pairs each answer after `delayMs` (or at the next turn), `taskEvaluations`
 * a call, `concurrency` evaluations in flight.
 */
class FakePool implements Evaluator {
  calls = 0;
  readonly outputs = OUTPUTS;

  constructor(
    private readonly delayMs: number,
    readonly concurrency = 16,
    readonly taskEvaluations = 8,
  ) {}

  evaluate(): Promise<Float64Array[]> {
    throw new Error("the engine sends pairs");
  }

  differences(pairs: ElementPairs): Promise<Float64Array> {
    this.calls += 2 * pairCount(pairs);
    const values = expected(pairs);
    return new Promise((resolve) => (this.delayMs > 0 ? setTimeout(() => resolve(values), this.delayMs) : setImmediate(() => resolve(values))));
  }
}

/** The server's side of "auto" (backends.ts) over `pool`, with a correction of its own when given one. */
function workers(pool: FakePool, correction?: PoolCorrection): AutoPool {
  const costs = (): PoolCosts => ({ threads: 2, cores: 2, taskOverheadMs: 0.01, ready: true, correction: correction?.value });
  return { costs, startPool: () => undefined, makePool: () => pool, observed: (r) => correction?.observed(r), relax: () => correction?.relax() };
}

/**
 * Central pairs of `evaluations / 2` elements through `auto` as the engine sends them (calls of
 * taskEvaluations, as many in flight as its concurrency allows), each answer checked; the route of
 * each call, in order.
 */
async function drive(auto: AutoEvaluator, inline: FakeInline, pool: FakePool, evaluations: number): Promise<("inline" | "pool")[]> {
  const routes: ("inline" | "pool")[] = [];
  const inFlight = new Set<Promise<void>>();
  let held = 0;
  for (let next = 0; next < evaluations / 2 || inFlight.size > 0; ) {
    while (next < evaluations / 2 && held < auto.concurrency) {
      const size = Math.min(evaluations / 2 - next, Math.max(1, Math.floor((auto.taskEvaluations ?? 2) / 2)));
      const builder = new ElementPairsBuilder(size, size);
      for (let k = 0; k < size; k++, next++) {
        builder.element(0, next, next + 0.5, next - 0.25);
        builder.endPair();
      }
      const pairs = builder.build();
      const before = pool.calls;
      const call = auto.differences(pairs);
      routes.push(pool.calls > before ? "pool" : "inline");
      held += 2 * size;
      const done: Promise<void> = call.then((values) => {
        assert.deepEqual(values, expected(pairs));
        held -= 2 * size;
        inFlight.delete(done);
      });
      inFlight.add(done);
    }
    await Promise.race(inFlight);
  }
  assert.equal(inline.calls + pool.calls, evaluations, "every evaluation once, inline or pooled");
  return routes;
}

/** This process's timings count as of optimised code once it has evaluated WARM_EVALUATIONS times inline (a test run alone starts cold). */
async function warmTimings(): Promise<void> {
  const inline = new FakeInline(0.001);
  const pool = new FakePool(0);
  await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, WARM_EVALUATIONS, workers(pool)), inline, pool, WARM_EVALUATIONS);
}

describe('"auto": the pool checked against inline within a request', () => {
  it("a pool much slower than modelled is compared with inline, and dropped for the rest when inline is faster", async () => {
    const inline = new FakeInline(0.15);
    const pool = new FakePool(10); // 16 evaluations every 10 ms: about 0.6 ms each, where the model expects about 0.08 (4 times inline: at 5 ms, twice, a loaded machine once measured inline as slow)
    const routes = await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 8000, workers(pool)), inline, pool, 8000);
    const firstPooled = routes.indexOf("pool");
    const lastPooled = routes.lastIndexOf("pool");
    assert.ok(firstPooled > 0, "inline first, then the pool");
    // The pace is first judged once 1 024 pooled evaluations are back and two windows of 1 024 more.
    assert.ok(pool.calls >= 3 * 1024, `pooled ${pool.calls}`);
    assert.ok(lastPooled < routes.length - 1 && routes.slice(lastPooled + 1).every((r) => r === "inline"), "inline to the end once dropped");
    // Dropped at the first check (a few windows and what was in flight), then inline for the rest:
    // more than the 32 samples, the comparison's evaluations and a thousand more.
    assert.ok(pool.calls < 4 * 1024, `pooled ${pool.calls}`);
    assert.ok(inline.calls > 32 + 1280 + 1000, `inline ${inline.calls}`);
  });

  it("a pool that keeps the model's pace is kept to the end, never compared", async () => {
    const inline = new FakeInline(0.15);
    const pool = new FakePool(0);
    const routes = await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 8000, workers(pool)), inline, pool, 8000);
    const firstPooled = routes.indexOf("pool");
    assert.ok(firstPooled > 0, "inline first, then the pool");
    assert.ok(routes.slice(firstPooled).every((r) => r === "pool"), "pooled to the end");
    assert.ok(inline.calls <= 64, `inline ${inline.calls}`);
  });

  it("requests too short to be measured in windows still teach the correction: after some slower than predicted, the next stays inline", async function () {
    this.timeout(60_000);
    const correction = new PoolCorrection();
    const pooledPerRequest: number[] = [];
    // 2 000 evaluations, as meshstats' grouped Jacobian: under the 3 072 the windows need. Until
    // this process's pool has run 20 000 evaluations its pace counts as cold and teaches nothing.
    for (let request = 0; request < 30 && pooledPerRequest.at(-1) !== 0; request++) {
      const inline = new FakeInline(0.15);
      const pool = new FakePool(5);
      await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 2000, workers(pool, correction)), inline, pool, 2000);
      pooledPerRequest.push(pool.calls);
    }
    assert.ok(pooledPerRequest[0] > 1900, `the first request pooled ${pooledPerRequest[0]}`);
    assert.equal(pooledPerRequest.at(-1), 0, `pooled per request: ${pooledPerRequest.join(", ")}`);
    // The pool ran about four times slower than modelled (0.3 against 0.08 ms per evaluation).
    assert.ok(correction.value > 2, `correction ${correction.value}`);
  });

  it("a request of the shapes of a recent one decides before its first evaluation, from that one's measurements; every REMEASURE_EVERY-th measures again", async () => {
    // What backends.ts keeps per request shapes.
    const memory: { costs?: InlineCosts; uses: number } = { uses: 0 };
    const remembering = (pool: FakePool): AutoPool => ({
      ...workers(pool),
      recalled: () => (memory.costs && memory.uses < REMEASURE_EVERY ? (memory.uses++, memory.costs) : undefined),
      remember: (costs) => Object.assign(memory, { costs, uses: 0 }),
    });
    const firstCalls: string[] = [];
    for (let request = 0; request < REMEASURE_EVERY + 2; request++) {
      const inline = new FakeInline(0.15);
      const pool = new FakePool(0);
      const routes = await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 2000, remembering(pool)), inline, pool, 2000);
      firstCalls.push(routes[0]);
      if (routes[0] === "pool") assert.equal(inline.calls, 0, "no sample taken");
    }
    assert.deepEqual(firstCalls, ["inline", ...Array(REMEASURE_EVERY).fill("pool"), "inline"]);
    assert.ok(memory.costs!.applyMs >= 0.15 && memory.costs!.inlineMs >= 0.15, JSON.stringify(memory.costs));
  });

  it("applies that hold the event loop 20 ms or more: the pool is taken after the second pair (it waited for 32 samples), and a later request takes it at once", async () => {
    let lastApplyMs: number | undefined;
    const told = (pool: FakePool): AutoPool => ({ ...workers(pool), applied: (ms) => void (lastApplyMs = ms), blockingApplyMs: () => (lastApplyMs! >= 20 ? lastApplyMs : undefined) });
    const first = { inline: new FakeInline(25), pool: new FakePool(0) };
    const routes = await drive(new AutoEvaluator(first.inline as unknown as InlineEvaluator, 40, told(first.pool)), first.inline, first.pool, 40);
    assert.deepEqual([routes[0], routes[1], first.inline.calls], ["inline", "inline", 4]);
    assert.ok(routes.slice(2).every((r) => r === "pool"), routes.join(" "));
    const next = { inline: new FakeInline(25), pool: new FakePool(0) };
    await drive(new AutoEvaluator(next.inline as unknown as InlineEvaluator, 40, told(next.pool)), next.inline, next.pool, 40);
    assert.equal(next.inline.calls, 0);
  });

  it("one pair that held the event loop 20 ms (the thread preempted) among quick ones does not decide for the pool", async () => {
    // Cheap applies whose first pair took 50 ms: a machine busy for a moment.
    const inline = new FakeInline(0.001, 50);
    const pool = new FakePool(0);
    const routes = await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 40, workers(pool)), inline, pool, 40);
    // Sampled as cheap applies are: nothing decided before 32 evaluations (16 pairs), where one slow
    // pair alone took the pool from the second on. (What the request's pace then says, its stall
    // included, is the model's to weigh.)
    assert.deepEqual(routes.slice(0, 16), Array(16).fill("inline"), routes.join(" "));
  });

  // One core, and a job's start of 300 ms (six task round trips of 50): the pool cannot beat inline.
  // It would be taken only for an inline pace past 17 ms an evaluation where apply takes 5 ms: far
  // above what a busy machine adds (this loop's own work between calls, and a busy-waiting apply
  // overshooting its end when preempted: up to 2 ms), far below what a 600 ms stall counted over
  // 30 evaluations adds (20 ms).
  const oneCore = (pool: FakePool): AutoPool => ({ ...workers(pool), costs: () => ({ threads: 2, cores: 1, taskOverheadMs: 50, ready: true }) });

  it("inline's pace leaves out the request's first call: a first pair 600 ms slow does not make a pool that cannot gain look worth taking", async () => {
    // Paced from the first call on, 600 ms over 32 evaluations read as 24 ms each, and the pool was taken.
    const inline = new FakeInline(5, 600);
    const pool = new FakePool(0);
    await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 64, oneCore(pool)), inline, pool, 64);
    assert.equal(pool.calls, 0, `${pool.calls} of 64 evaluations pooled`);
  });

  it("inline's pace leaves out pauses between calls: 600 ms of other work after the fifth pair does not make a pool that cannot gain look worth taking", async () => {
    const inline = new FakeInline(5);
    const pool = new FakePool(0);
    const auto = new AutoEvaluator(inline as unknown as InlineEvaluator, 64, oneCore(pool));
    for (let next = 0; next < 32; next++) {
      const builder = new ElementPairsBuilder(1, 1);
      builder.element(0, next, next + 0.5, next - 0.25);
      builder.endPair();
      const pairs = builder.build();
      assert.deepEqual(await auto.differences(pairs), expected(pairs));
      // A collection, or the event loop's turn to other calls.
      if (next === 4) for (const end = performance.now() + 600; performance.now() < end; );
    }
    assert.equal(pool.calls, 0, `${pool.calls} of 64 evaluations pooled`);
  });

  it("evaluations the engine starts together (a grouped forward Jacobian's groups) are timed right: the decision at 32 is not missed, and the pace is apply's", async () => {
    await warmTimings();
    // Eight at a time, each after the first followed a gap of its predecessors' applies, and three of
    // them counted as pauses (over 0.05 ms): more than the time that passed, a pace below 0. Three at a
    // time, the count went 30 → 33: looking for exactly 32, no decision came before 1 024.
    for (const [together, applyMs] of [[8, 0.01], [3, 0.05]]) {
      let measured: InlineCosts | undefined;
      const inline = new FakeInline(applyMs);
      const auto = new AutoEvaluator(inline as unknown as InlineEvaluator, 3000, { ...oneCore(new FakePool(0)), remember: (costs) => void (measured = costs) });
      // As Promise.all starts them: each apply runs before the others' awaits return.
      for (let k = 0; k < 60 && !measured; k += together) {
        await Promise.all(Array.from({ length: together }, (_, j) => auto.evaluate([{ value: k + j }] as unknown as Perturbation)));
      }
      assert.ok(measured, `${together} at a time: no decision in ${inline.calls} evaluations`);
      assert.ok(measured.inlineMs > 0.8 * applyMs && measured.inlineMs < 0.5, `${together} at a time: inline pace ${measured.inlineMs} ms an evaluation, apply ${applyMs}`);
      assert.ok(measured.applyMs >= applyMs && measured.applyMs < 0.5, `${together} at a time: apply ${measured.applyMs} ms`);
    }
  });

  it("a pool that answers its whole concurrency at once is paced by what comes back: the correction learns its real pace", async function () {
    this.timeout(20_000);
    // 4 096 evaluations in flight, all answered 20 ms after they were sent: 0.005 ms each, where
    // the model predicts about 0.076 (apply 0.15 ms over 2 threads). Paced by sends, two windows
    // ended in the same wave, a few microseconds apart (the correction fell to 0.03 of the truth).
    const ratios: number[] = [];
    for (let request = 0; request < 2; request++) {
      const inline = new FakeInline(0.15);
      const pool = new FakePool(20, 4096, 256);
      await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 10 * 4096, { ...workers(pool), observed: (r) => ratios.push(r) }), inline, pool, 10 * 4096);
    }
    // The second request's windows are of a warm pool (20 000 pooled evaluations in this process).
    // Paced by sends, the ratio was about 0.002. Paced right, it is at most 0.065: the engine's
    // measured gaps between evaluations (this loop's own checks, up to PAUSE_MS each) raise the
    // prediction, and on a busy machine it read 0.026 to 0.06.
    assert.ok(ratios.length > 0, "a warm pool's pace was observed");
    for (const ratio of ratios) assert.ok(ratio > 0.01 && ratio < 0.3, `observed pace over predicted: ${ratios.map((r) => r.toFixed(3)).join(", ")} (true: about 0.065)`);
  });

  it("the comparison times inline once the pool's evaluations are back, for about 20 ms: a costly apply is timed a few dozen times, and the pool kept", async function () {
    this.timeout(20_000);
    // Apply 2 ms inline; a pool of 8 threads (modelled: 0.25 ms an evaluation) that keeps 0.8: more
    // than 1.5 times the model, so compared, and less than inline, so kept. The comparison timed
    // 1 280 inline evaluations (2.6 s) however costly they were.
    const inline = new FakeInline(2);
    const pool = new FakePool(12.8, 16, 8);
    const eight: AutoPool = { ...workers(pool), costs: () => ({ threads: 8, cores: 8, taskOverheadMs: 0.01, ready: true }) };
    const routes = await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 5000, eight), inline, pool, 5000);
    const lastInline = routes.lastIndexOf("inline");
    assert.ok(inline.calls > 4 + 64, `compared: ${inline.calls} inline`);
    assert.ok(inline.calls < 4 + 100, `inline ${inline.calls}: the 4 samples, what ran while the pool's 16 came back, and the comparison's 64`);
    assert.ok(routes.slice(lastInline + 1).length > 100 && routes.slice(lastInline + 1).every((r) => r === "pool"), "the pool kept after it");
  });

  it("requests that recall a request's costs follow a comparison that kept the pool, not compared again; one that dropped it is not followed", async function () {
    this.timeout(30_000);
    const memory: { costs?: InlineCosts; uses: number; keptPool?: boolean } = { uses: 0 };
    const remembering = (pool: FakePool): AutoPool => ({
      ...workers(pool),
      recalled: () => (memory.costs && memory.uses < REMEASURE_EVERY ? (memory.uses++, memory.costs) : undefined),
      remember: (costs) => Object.assign(memory, { costs, uses: 0, keptPool: undefined }),
      keptPool: () => memory.keptPool === true,
      poolKept: () => void (memory.keptPool = true),
    });
    // Only a warm pool's comparison is kept: 24 000 pooled evaluations first (an instant pool).
    const warming = { inline: new FakeInline(0.15), pool: new FakePool(0, 4096, 256) };
    await drive(new AutoEvaluator(warming.inline as unknown as InlineEvaluator, 24_000, workers(warming.pool)), warming.inline, warming.pool, 24_000);
    // A pool eight times slower than modelled (0.6 ms an evaluation against inline's 0.15: a busy
    // machine's preemption does not turn it), compared with inline and dropped.
    const request = async (evaluations = 8000) => {
      const inline = new FakeInline(0.15);
      const pool = new FakePool(10);
      const routes = await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, evaluations, remembering(pool)), inline, pool, evaluations);
      return { routes, pooled: pool.calls };
    };
    const first = await request();
    assert.ok(first.pooled > 0 && first.routes.at(-1) === "inline" && memory.keptPool === undefined, `pooled ${first.pooled}, then inline; nothing kept`);
    // The next recalls its costs, takes the pool at once, and compares again (one short comparison may be noise).
    const second = await request();
    assert.equal(second.routes[0], "pool");
    assert.equal(second.routes.at(-1), "inline", "compared again, and dropped");
    // A comparison that kept the pool: the same slow pool is kept to the end, not compared again.
    memory.keptPool = true;
    const third = await request(4000); // long enough for its pace to be measured (about 3 100 back)
    assert.ok(third.routes.every((r) => r === "pool"), "pooled from the first evaluation to the end");
  });

  /**
   * `count` requests of one shape (2 000 evaluations, inline `applyMs` each, the pool answering a call
   * after `delayMs`) with what backends.ts keeps per request shapes: the measured costs, and the
   * paces by route. The evaluations each sent to the pool, and the paces kept.
   */
  /** Inline's apply in the tests of paces: the pool the model predicts (about half of it) is clearly worth taking. */
  const APPLY_MS = 0.08;

  async function requestsOfOneShape(delayMs: number, count: number, inlineFirst = false, applyMs = APPLY_MS) {
    const memory: { costs?: InlineCosts; uses: number; paces: RoutePaces } = { uses: 0, paces: new RoutePaces() };
    const serverSide = (pool: FakePool): AutoPool => ({
      ...workers(pool),
      recalled: () => (memory.costs && memory.uses < REMEASURE_EVERY ? (memory.uses++, memory.costs) : undefined),
      remember: (costs) => Object.assign(memory, { costs, uses: 0 }),
      route: () => memory.paces.next(memory.costs?.inlineMs, inlineFirst),
      paced: (route, ms) => memory.paces.record(route, ms),
      routeInlineMs: () => memory.paces.inlineMsForModel,
    });
    const pooled: number[] = [];
    for (let request = 0; request < count; request++) {
      const inline = new FakeInline(applyMs);
      const pool = new FakePool(delayMs);
      await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 2000, serverSide(pool)), inline, pool, 2000);
      pooled.push(pool.calls);
    }
    return { pooled, paces: memory.paces.measured };
  }

  it("requests of one shape whose pooled paces are slower than inline's run inline throughout, once inline's were measured; a clearly faster pool is never tried inline", async function () {
    this.timeout(30_000);
    const requests = (delayMs: number, count: number) => requestsOfOneShape(delayMs, count);
    await warmTimings();
    // A pool at 0.25 ms an evaluation (16 every 4 ms) where inline takes 0.08: the model predicts
    // 0.04 and, uncorrected, takes it every time; 2 000 evaluations are too few for the windows
    // that would compare them within a request. (At 0.05 inline, the model's margin was thin enough
    // for the harness's own gaps, timed as the engine's, to decline the pool at the first decision.)
    const slow = await requests(4, 8);
    assert.ok(slow.pooled.slice(0, PACES).every((n) => n > 1900), `pooled per request: ${slow.pooled.join(", ")}`);
    assert.deepEqual(slow.pooled.slice(PACES), Array(8 - PACES).fill(0), `pooled per request: ${slow.pooled.join(", ")}`);
    assert.ok(slow.paces.pool.every((ms) => ms > 0.2) && slow.paces.inline.every((ms) => ms >= APPLY_MS && ms < 0.16), JSON.stringify(slow.paces));
    // A pool answering at the next turn: clearly faster than inline's measured pace, never tried inline.
    const fast = await requests(0, 8);
    assert.ok(fast.pooled.every((n) => n > 1900), `pooled per request: ${fast.pooled.join(", ")}`);
    assert.deepEqual(fast.paces.inline, []);
  });

  it("inline first (the threads leave the main thread no core): a shape's first PACES requests run inline throughout, then the pool the model takes is measured and the paces decide", async function () {
    this.timeout(30_000);
    await warmTimings();
    const slow = await requestsOfOneShape(4, 8, true);
    const taken = (pooled: number[]) => pooled.map((n) => (n > 1900 ? "pool" : n === 0 ? "inline" : `${n} pooled`));
    assert.deepEqual(taken(slow.pooled), [...Array(PACES).fill("inline"), ...Array(PACES).fill("pool"), "inline", "inline"], slow.pooled.join(", "));
    const fast = await requestsOfOneShape(0, 8, true);
    assert.deepEqual(taken(fast.pooled), [...Array(PACES).fill("inline"), ...Array(8 - PACES).fill("pool")], fast.pooled.join(", "));
    // A costly apply (0.2 ms, the quickest of its first four timings): the first request decides, and takes the pool.
    const costly = await requestsOfOneShape(0, 1, true, 0.2);
    assert.ok(costly.pooled[0] > 1800, `pooled ${costly.pooled[0]} of 2000`);
  });

  it("inline first: two batches in a row slowed by a stall (a collection, a preempted thread) do not make a cheap apply costly", async function () {
    this.timeout(30_000);
    await warmTimings();
    // 0.01 ms applies whose second and third calls each stall 30 ms.
    class Stalling extends FakeInline {
      private call = 0;
      override async differences(pairs: ElementPairs): Promise<Float64Array> {
        if (++this.call === 2 || this.call === 3) for (const end = performance.now() + 30; performance.now() < end; );
        return super.differences(pairs);
      }
    }
    const inline = new Stalling(0.01);
    const pool = new FakePool(0);
    await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 2000, { ...workers(pool), route: () => "inline first" }), inline, pool, 2000);
    assert.equal(pool.calls, 0, "the quickest timing decides, not the latest two");
  });

  it("the model weighs the pool against inline's measured pace where it has one, not against its own timings of single evaluations", async function () {
    this.timeout(30_000);
    await warmTimings();
    // The pool as before: 0.026 ms an evaluation predicted, against 0.05 timed inline.
    const pooled = async (routeInlineMs?: number) => {
      const inline = new FakeInline(0.05);
      const pool = new FakePool(2);
      await drive(new AutoEvaluator(inline as unknown as InlineEvaluator, 2000, { ...workers(pool), routeInlineMs: () => routeInlineMs }), inline, pool, 2000);
      return pool.calls;
    };
    assert.ok((await pooled()) > 1900, "timed at 0.05, the pool is taken");
    assert.equal(await pooled(0.02), 0, "inline measured at 0.02 a whole request: declined");
  });

  it("a job's share is one thread per 1 000 evaluations it plans (at least two, at most the pool's), and bounds its batches in flight", () => {
    assert.deepEqual([threadsForJob(6000, 15), threadsForJob(2000, 15), threadsForJob(500, 15), threadsForJob(18_000, 15), threadsForJob(undefined, 15), threadsForJob(6000, 1)], [6, 2, 2, 15, 15, 1]);
    // What a job may have in flight: a batch running and one queued for each of its threads.
    const pool = { threads: 15, lastBatchSize: 8, tesseract: "meshstats" } as unknown as WorkerPool;
    const job = { inputs: {}, inputPaths: ["x"], outputPaths: ["y"], outputsField: "outputs" };
    assert.equal(new PoolEvaluator(pool, job).concurrency, 2 * 15 * 8);
    assert.equal(new PoolEvaluator(pool, { ...job, threads: 6 }).concurrency, 2 * 6 * 8);
  });

  /** `body` on a meshstats runtime under auto, with what each request's plan tells its evaluator (AutoEvaluator.replanned). */
  async function withPlans(body: (runtime: TesseractRuntime, plans: number[]) => Promise<void>): Promise<void> {
    const runtime = loadTesseract("meshstats");
    await runtime.useEvaluation({ workers: "auto", autoThreads: 2 });
    const plans: number[] = [];
    const original = AutoEvaluator.prototype.replanned;
    AutoEvaluator.prototype.replanned = function (evaluations: number) {
      plans.push(evaluations);
      original.call(this, evaluations);
    };
    try {
      await body(runtime, plans);
    } finally {
      AutoEvaluator.prototype.replanned = original;
      await runtime.close();
    }
  }

  it("a request's plan reaches auto: a grouped Jacobian plans its 2N evaluations, not the dense 6N it was set up with", () =>
    withPlans(async (runtime, plans) => {
      const N = 100;
      const request = (sparsity_mode: SparsityMode) => ({ inputs: sampleMeshInputs(N), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { algorithm: 1, sparsity_mode } }); // central
      const grouped = await runtime.jacobian(request(SparsityMode.SPARSITY_MODE_UNSPECIFIED));
      const dense = await runtime.jacobian(request(SparsityMode.SPARSITY_MODE_DENSE));
      assert.deepEqual([Number(grouped.stats.apply_calls), Number(dense.stats.apply_calls)], [2 * N, 6 * N]);
      assert.deepEqual(plans, [2 * N, 6 * N]);
    }));

  it("a forward Jacobian whose f(x) an Apply left in the evaluation cache plans n evaluations, not n + 1: auto is told its pace once they are back", () =>
    withPlans(async (runtime, plans) => {
      const N = 4;
      const inputs = runtime.decodeInputs(runtime.schema.inputs.encodeAny(sampleMeshInputs(N)));
      await runtime.applyMessage(runtime.schema.inputs.encodeAny(sampleMeshInputs(N)));
      const request = { inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"], options: { algorithm: Algorithm.ALGORITHM_FORWARD, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } };
      const { stats } = await runtime.jacobian(request);
      assert.deepEqual([Number(stats.apply_calls), plans], [3 * N, [3 * N]]);
      // 12 evaluations: too few for auto to decide, so only the told pace makes an entry for its shapes.
      assert.equal(runtime.autoMeasurements.shapes, 1);
    }));

  it("costs are remembered by a request's shapes and its inputs' scalars, not by its tensors' values", () => {
    const heat = (steps: number, values: number[], inputs: Record<string, unknown> = {}) =>
      requestShapes({ inputs: { initial_temperature: ndarray(Float64Array.from(values), [values.length]), steps, ...inputs }, leaves: [{ size: values.length }] as InputLeaf[], outputPaths: ["final_temperature"], plannedEvaluations: 2 * values.length });
    assert.equal(heat(1, [1, 2, 3]), heat(1, [4, 5, 6]), "other values, the same costs");
    const job = { inputs: { steps: 1 }, leaves: [{ size: 3 }] as InputLeaf[], outputPaths: ["final_temperature"], plannedEvaluations: 6 };
    assert.notEqual(requestShapes({ ...job, rpc: "Jacobian" }), requestShapes({ ...job, rpc: "JacobianRows" }), "a stream's reader paces it: its costs are its own");
    assert.notEqual(heat(1, [1, 2, 3]), heat(3000, [1, 2, 3]), "3 000 steps cost more than one");
    assert.notEqual(heat(1, [1, 2, 3]), heat(1, [1, 2, 3, 4]));
    assert.notEqual(heat(1, [1, 2]), heat(1, [1, 2], { mode: "implicit" }));
    assert.equal(heat(1, [1], { big: 2n ** 70n }), heat(1, [1], { big: 2n ** 70n }), "a bigint is a scalar too");
    const list = (v: number, length = 5000) => heat(1, [1], { table: Array.from({ length }, (_, i) => i * v) });
    assert.equal(list(1), list(2), "a long list counts by its length");
    assert.notEqual(list(1), list(1, 4999));
    assert.equal(heat(1, [1], { blob: "a".repeat(100) }), heat(1, [1], { blob: "b".repeat(100) }), "so does a long string");
    const many = (v: number) => heat(1, [1], Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i * v])));
    assert.ok(many(1).length <= 64 && many(1) === many(1) && many(1) !== many(2), "a long key is kept as its hash");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal(heat(1, [1, 2], { cyclic }), heat(1, [1, 2], { cyclic }), "a tree JSON cannot hold keys by shapes alone");
  });
});
