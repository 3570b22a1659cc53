/**
 * A pool that keeps fewer threads than it may run (the "auto" pool on more than two cores): threads
 * start as the batches waiting at busy workers call for them, each warm before it takes one, and
 * end once idle for the pool's retire time.
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import { WorkerPool } from "../server/eval/pool";
import { bounded, POLYNOMIAL, polynomialAt as expected, polynomialBatch as batch } from "./helpers";

describe("a pool that grows as its jobs need", () => {
  it("starts the threads it keeps; three batches at once start one more, not every thread it may run", async () => {
    const pool = new WorkerPool(POLYNOMIAL, 6, { keepThreads: 1 });
    try {
      await pool.calibrate();
      assert.equal(pool.liveThreads, 1);
      // The kept worker takes two (one running, one waiting); the third calls for one thread more.
      // piscina alone started all six: once a worker is free it starts one after the other for the same waiting task.
      for (let round = 0; round < 20; round++) {
        const values = [1.5, 2.5, 3.5].map((v) => v + round);
        const results = await Promise.all(values.map((v) => pool.evaluateBatch(batch(`round ${round}`, v), undefined, false)));
        results.forEach((r, k) => assert.deepEqual(Array.from(r.values), expected(values[k])));
        assert.ok(pool.liveThreads <= 2, `round ${round}: ${pool.liveThreads} threads for three batches at once`);
      }
      assert.equal(pool.liveThreads, 2);
    } finally {
      await pool.close();
    }
  });

  it("a busy job starts as many threads as its waiting batches call for, up to the most; those idle for the retire time end", async () => {
    const pool = new WorkerPool(POLYNOMIAL, 4, { keepThreads: 1, retireAfterMs: 50 });
    const created: number[] = [];
    pool.piscina.on("workerCreate", (w: { id: number }) => created.push(w.id));
    try {
      await pool.calibrate();
      // Sixteen batches wait: threads start until the pool has its most (4), each warm before it takes one.
      const grown = (async () => {
        for (let round = 0; pool.liveThreads < 4; round++) {
          const values = Array.from({ length: 16 }, (_, k) => 1 + k / 16 + round);
          const results = await Promise.all(values.map((v) => pool.evaluateBatch(batch(`busy ${round}`, v), undefined, false)));
          results.forEach((r, k) => assert.deepEqual(Array.from(r.values), expected(values[k])));
        }
      })();
      await bounded(grown, 10_000, "the pool did not grow to its four threads under sixteen batches at once");
      assert.equal(pool.liveThreads, 4);
      // Idle, the three beyond the one kept end; the pool still serves.
      await bounded((async () => {
        while (pool.liveThreads > 1) await once(pool.piscina, "workerDestroy");
      })(), 10_000, "idle threads beyond the one kept were not ended");
      assert.equal(pool.liveThreads, 1);
      const { values } = await pool.evaluateBatch(batch("after", 1.25), undefined, false);
      assert.deepEqual(Array.from(values), expected(1.25));
    } finally {
      await pool.close();
    }
  });

  it("while growth is held (the warm-up), batches wait at the threads there are; once released, they start more", async () => {
    let held = true;
    const pool = new WorkerPool(POLYNOMIAL, 4, { keepThreads: 1, growthHeld: () => held });
    try {
      await pool.calibrate();
      const sixteen = (job: string) => {
        const values = Array.from({ length: 16 }, (_, k) => 1 + k / 16);
        return Promise.all(values.map((v) => pool.evaluateBatch(batch(job, v), undefined, false))).then((results) =>
          results.forEach((r, k) => assert.deepEqual(Array.from(r.values), expected(values[k]))),
        );
      };
      for (let round = 0; round < 5; round++) await sixteen(`held ${round}`);
      assert.equal(pool.liveThreads, 1);
      held = false;
      await bounded((async () => {
        for (let round = 0; pool.liveThreads < 4; round++) await sixteen(`released ${round}`);
      })(), 10_000, "the pool did not grow once released");
    } finally {
      await pool.close();
    }
  });
});
