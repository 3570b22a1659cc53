/**
 * The bridge's request slots (server/bridge/runtime-slots.ts): owners take turns for free slots
 * (each gradient job one owner, the Apply calls together another), in order within an owner; a
 * caller cancelled while waiting leaves; Apply calls waiting are bounded, jobs are not.
 */
import { strict as assert } from "node:assert";
import { APPLY_CALLS, RuntimeSlots } from "../server/bridge/runtime-slots";
import { isTesseractError } from "../common/errors";

/** `take` for each of `owners` in order (all waiting behind a slot held first); the order they are served in. */
async function servedOrder(slots: RuntimeSlots, owners: { name: string; owner: object }[]): Promise<string[]> {
  const served: string[] = [];
  const held = await slots.take(undefined, {});
  const all = owners.map(({ name, owner }) =>
    slots.take(undefined, owner).then((release) => {
      served.push(name);
      // Released on a later turn, so each one served frees the slot for the next.
      setImmediate(release);
    }),
  );
  held();
  await Promise.all(all);
  return served;
}

describe("runtime slots: turns between the calls waiting for a runtime", () => {
  it("a job's evaluations and Apply calls waiting behind it are served in turn, each owner's own in order", async () => {
    const job = {};
    const waiting = [
      ...["j1", "j2", "j3", "j4"].map((name) => ({ name, owner: job })),
      ...["a1", "a2", "a3"].map((name) => ({ name, owner: APPLY_CALLS })),
    ];
    // One queue served the job's four first; every Apply waited for the whole job.
    assert.deepEqual(await servedOrder(new RuntimeSlots(() => 1), waiting), ["j1", "a1", "j2", "a2", "j3", "a3", "j4"]);
  });

  it("two jobs share the slots in turn: a big one does not hold a small one behind all of its evaluations", async () => {
    const big = {};
    const small = {};
    const waiting = [...Array.from({ length: 5 }, (_, k) => ({ name: `big${k}`, owner: big })), { name: "small0", owner: small }, { name: "small1", owner: small }];
    assert.deepEqual(await servedOrder(new RuntimeSlots(() => 1), waiting), ["big0", "small0", "big1", "small1", "big2", "big3", "big4"]);
  });

  it("a caller cancelled while it waits leaves its turn; the next is served", async () => {
    const slots = new RuntimeSlots(() => 1);
    const held = await slots.take();
    const controller = new AbortController();
    const cancelled = slots.take(controller.signal, {});
    const next = slots.take(undefined, {});
    controller.abort(new Error("cancelled"));
    await assert.rejects(cancelled, /cancelled/);
    held();
    const release = await next;
    release();
    // Nothing is left waiting or held: a slot is free at once.
    (await slots.take())();
  });

  it("Apply calls wait up to 16 a slot (at least 64), then RESOURCE_EXHAUSTED; a job's evaluations are not bounded", async () => {
    const slots = new RuntimeSlots(() => 2);
    const held = [await slots.take(), await slots.take()];
    const waiting = Array.from({ length: 64 }, () => slots.take());
    await assert.rejects(slots.take(), (e: unknown) => {
      assert.ok(isTesseractError(e) && e.code === 8, String(e)); // RESOURCE_EXHAUSTED
      assert.equal((e as Error).message, "64 Apply calls are waiting for the tesseract-core runtimes (2 requests at once: --concurrency per runtime), the most this server queues; retry in a few seconds");
      return true;
    });
    const owner = {};
    const job = Array.from({ length: 100 }, () => slots.take(undefined, owner));
    for (const release of held) release();
    // Every waiting caller is served in the end, the job's 100 among them.
    await Promise.all([...waiting, ...job].map((taking) => taking.then((release) => setImmediate(release))));
  });
});

describe("runtime slots: requests given up on while the runtime computes them", () => {
  it("a hold counts at once, over the capacity too, and its release serves the next caller", async () => {
    const slots = new RuntimeSlots(() => 1);
    const taken = await slots.take();
    const held = slots.hold(); // the caller of `taken` gave up; its request goes on
    taken();
    let served = false;
    const next = slots.take().then((release) => ((served = true), release));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(served, false, "a caller was served while the abandoned request held the only slot");
    held();
    held(); // once only
    (await next)();
    (await slots.take())();
  });
});
