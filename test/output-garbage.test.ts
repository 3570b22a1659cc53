/**
 * A worker's dead output buffers (output-garbage.ts): collected once per COLLECT_EVERY_BYTES of
 * outputs, by a minor collection that frees dead typed arrays' memory and exposes no `gc` to the
 * thread's own code.
 */
import { strict as assert } from "node:assert";
import { COLLECT_EVERY_BYTES, minorCollection, OutputGarbage } from "../server/eval/output-garbage";

describe("worker output garbage", () => {
  it("collects once per COLLECT_EVERY_BYTES of outputs, counting what is left over", () => {
    let collections = 0;
    const garbage = new OutputGarbage(() => collections++);
    const step = 3 * 1024 * 1024;
    for (let k = 0; k < 8; k++) garbage.made(step); // collects after the 3rd and the 6th (9 MB each), 6 MB left
    assert.equal(collections, 2);
    garbage.made(COLLECT_EVERY_BYTES);
    assert.equal(collections, 3);
    assert.doesNotThrow(() => new OutputGarbage(undefined).made(10 * COLLECT_EVERY_BYTES), "without a collection it only counts");
  });

  it("the minor collection frees dead typed arrays' bytes, and the thread's own code gets no gc", async () => {
    const collect = minorCollection();
    assert.equal(typeof collect, "function", "this Node offers V8's minor collection");
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
    collect!();
    const before = process.memoryUsage().arrayBuffers;
    for (let k = 0; k < 256; k++) new Float64Array(8192)[0] = k; // 16 MB, dead at once
    const piled = process.memoryUsage().arrayBuffers - before;
    assert.ok(piled >= 16e6, `dead outputs stay counted until collected (${piled} bytes)`);
    collect!();
    // V8 frees the collected buffers' bytes on a background thread: wait for it, a turn at a time.
    const deadline = Date.now() + 5000;
    while (process.memoryUsage().arrayBuffers - before > piled / 4 && Date.now() < deadline) await new Promise(setImmediate);
    assert.ok(process.memoryUsage().arrayBuffers - before <= piled / 4, `freed: ${process.memoryUsage().arrayBuffers - before} of ${piled} bytes left`);
  });
});
