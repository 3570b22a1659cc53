/**
 * A worker's dead output buffers (output-garbage.ts): collected once per its share of the pool's
 * budget of outputs and once the thread is quiet, by a minor collection that frees dead typed
 * arrays' memory and exposes no `gc` to the thread's own code.
 */
import { strict as assert } from "node:assert";
import { collectEvery, MIN_COLLECT_EVERY_BYTES, minorCollection, OutputGarbage, POOL_GARBAGE_BYTES } from "../server/eval/output-garbage";

describe("worker output garbage", () => {
  it("collects once per `every` bytes of outputs, counting what is left over; a thread's share of the pool's budget", () => {
    const MB = 1024 * 1024;
    let collections = 0;
    const garbage = new OutputGarbage(() => collections++, 8 * MB);
    for (let k = 0; k < 8; k++) garbage.made(3 * MB); // collects after the 3rd and the 6th (9 MB each), 6 MB left
    assert.equal(collections, 2);
    garbage.made(8 * MB);
    assert.equal(collections, 3);
    assert.doesNotThrow(() => new OutputGarbage(undefined, MB).made(10 * MB), "without a collection it does nothing");
    assert.equal(collectEvery(1), 32 * MB, "one thread: V8's own trigger (~32 MB) comes first");
    assert.equal(collectEvery(2), 16 * MB);
    assert.equal(collectEvery(3), POOL_GARBAGE_BYTES / 3);
    assert.equal(collectEvery(15), MIN_COLLECT_EVERY_BYTES);
    assert.equal(collectEvery(64), MIN_COLLECT_EVERY_BYTES);
    assert.equal(collectEvery(0), POOL_GARBAGE_BYTES);
  });

  it("a thread quiet for idleMs collects what its last evaluations left, once for all of them", async () => {
    const collected: number[] = [];
    let quiet!: () => void;
    const garbage = new OutputGarbage(() => (collected.push(performance.now()), quiet?.()), 1 << 30, 30);
    const start = performance.now();
    for (let k = 0; k < 5; k++) garbage.made(1000); // busy: each batch re-arms the quiet timer
    await new Promise<void>((resolve) => (quiet = resolve));
    assert.equal(collected.length, 1);
    assert.ok(collected[0] - start >= 29, `after the quiet time (${collected[0] - start} ms)`);
  });

  it("the minor collection frees dead typed arrays' bytes, and the thread's own code gets no gc", async () => {
    const collect = minorCollection();
    assert.equal(typeof collect, "function", "this Node offers V8's minor collection");
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
    collect!();
    const before = process.memoryUsage().arrayBuffers;
    for (let k = 0; k < 256; k++) new Float64Array(8192)[0] = k; // 16 MB, dead at once
    const piled = process.memoryUsage().arrayBuffers - before;
    // Most of them: V8 may scavenge once in the loop itself, by its own accounting of external memory.
    assert.ok(piled >= 8e6, `dead outputs stay counted until collected (${piled} bytes)`);
    collect!();
    // V8 frees the collected buffers' bytes on a background thread: wait for it, a turn at a time.
    const deadline = Date.now() + 5000;
    while (process.memoryUsage().arrayBuffers - before > piled / 4 && Date.now() < deadline) await new Promise(setImmediate);
    assert.ok(process.memoryUsage().arrayBuffers - before <= piled / 4, `freed: ${process.memoryUsage().arrayBuffers - before} of ${piled} bytes left`);
  });
});
