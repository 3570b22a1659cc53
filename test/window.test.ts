/**
 * The engine's bounded concurrency (server/fd/window.ts `completed`): tasks settled by hand, so that
 * what starts, and when, is exact.
 */
import { strict as assert } from "node:assert";
import { ChunkWindow, completed, ConsumerPace } from "../server/fd/window";

/** Tasks that settle when the test says: `started` counts them; `settle(k)` resolves task k with k. */
function manualTasks(total: number) {
  const resolvers: ((value: number) => void)[] = [];
  let started = 0;
  return {
    more: () => started < total,
    task: () => {
      const k = started++;
      return new Promise<number>((resolve) => (resolvers[k] = resolve));
    },
    get started() {
      return started;
    },
    settle: (k: number) => resolvers[k](k),
  };
}

/** Lets every pending promise callback run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("completed: bounded concurrency for the engine", () => {
  it("a slow consumer holds the engine back: nothing new starts until it pulls again", async () => {
    const tasks = manualTasks(20);
    const results = completed(tasks.more, () => 2, tasks.task);
    const first = results.next(); // starts the window: tasks 0 and 1
    await turn();
    assert.equal(tasks.started, 2);
    tasks.settle(0);
    assert.deepEqual((await first).value, [0]);
    // The consumer holds [0] and pulls nothing: task 1 finishes, and nothing takes its place.
    tasks.settle(1);
    await turn();
    assert.equal(tasks.started, 2);
    // The next pull takes what settled and fills the window again.
    assert.deepEqual((await results.next()).value, [1]);
    await turn();
    assert.equal(tasks.started, 4);
    await results.return(undefined);
  });

  it("every result comes out once, whatever the order tasks settle in", async () => {
    const tasks = manualTasks(9);
    const results = completed(tasks.more, () => 3, tasks.task);
    const seen: number[] = [];
    const consume = (async () => {
      for await (const batch of results) seen.push(...batch);
    })();
    for (const k of [1, 0, 3, 2, 5, 4, 8, 7, 6]) {
      while (tasks.started <= k) await turn();
      tasks.settle(k);
      await turn();
    }
    await consume;
    assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("chunks of changing size: the evaluations out stay within the capacity plus one chunk", async () => {
    // 1000 items of 2 evaluations, capacity 100: chunks of 25 items (50 evaluations), then of 5.
    let size = 25;
    const chunks = new ChunkWindow(1000, 2, () => size, () => 100);
    const pending: { items: number; settle: () => void }[] = [];
    let out = 0;
    let most = 0;
    const task = () =>
      chunks.take(
        (from, to) =>
          new Promise<number>((resolve) => {
            out += 2 * (to - from);
            most = Math.max(most, out);
            pending.push({ items: to - from, settle: () => ((out -= 2 * (to - from)), resolve(to - from)) });
          }),
      );
    const results = completed(chunks.more, chunks.window, task);
    const first = results.next();
    await turn();
    assert.deepEqual(pending.map((p) => p.items), [25, 25], "two chunks of 50 evaluations fill 100");
    size = 5; // the pool measured its costs: smaller tasks
    pending.shift()!.settle();
    await first;
    const second = results.next();
    await turn();
    // Room for 50 evaluations: five chunks of 10 (counting chunks, ten would start: 150 out).
    assert.deepEqual(pending.map((p) => p.items), [25, 5, 5, 5, 5, 5]);
    assert.ok(most <= 100, `${most} evaluations out`);
    pending.shift()!.settle();
    await second;
    await results.return(undefined);
  });

  it("nothing starts once the consumer stops", async () => {
    const stopping = manualTasks(50);
    const results = completed(stopping.more, () => 2, stopping.task);
    const first = results.next();
    await turn();
    stopping.settle(0);
    await first;
    await results.return(undefined);
    const before = stopping.started;
    for (let k = 1; k < before; k++) stopping.settle(k);
    await turn();
    assert.equal(stopping.started, before);
  });
});

describe("ConsumerPace: tasks in flight for a consumer that sets the pace", () => {
  /** `count` tasks of `ms` each settled, and the consumer taking `results` results in `awayMs` per return, `returns` times; the limits read after each return. */
  const drive = (pace: ConsumerPace, taskMs: number, awayMs: number, returns: number, window = 64) =>
    Array.from({ length: returns }, () => {
      pace.settled(taskMs);
      pace.consumed(awayMs, 1);
      return pace.limit(window);
    });

  it("two in flight until four tasks are timed; then one more than a task's time at the consumer's pace", () => {
    const pace = new ConsumerPace();
    assert.equal(pace.limit(64), 2);
    // A consumer four times slower than a task: two keep a result ready for it.
    assert.deepEqual(drive(pace, 0.5, 2, 6), [2, 2, 2, 2, 2, 2]);
  });

  it("more by one once as many results as tasks were taken since; fewer at once; never past the window", () => {
    const pace = new ConsumerPace();
    // Tasks of 1 ms, a consumer taking 0.1 ms a result: it wants 11 in flight. From four timed
    // tasks on, the count grows by one after two results, then three, then four, ...
    assert.deepEqual(drive(pace, 1, 0.1, 16), [2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5, 6]);
    // The consumer slows to 1.5 ms a result (its recent past weighs more): the count drops as it does, at once.
    const slower = drive(pace, 1, 1.5, 60);
    assert.ok(slower.every((n, k) => k === 0 || n <= slower[k - 1]), `never grew while the consumer slowed: ${slower}`);
    assert.equal(slower.at(-1), 2);
    // A window of three bounds it whatever the pace.
    assert.deepEqual(drive(new ConsumerPace(), 1, 0.01, 40, 3).slice(-3), [3, 3, 3]);
  });

  it("a stall counts for its task only: the quickest of the recent sixteen tasks sets the pace", () => {
    const pace = new ConsumerPace();
    drive(pace, 0.5, 2, 8);
    pace.settled(500); // one task held 500 ms (a collection, a preempted thread)
    pace.consumed(2, 1);
    assert.equal(pace.limit(64), 2);
  });
});
