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
  /**
   * A stream driven on a clock of its own: each time the consumer comes back it has taken one
   * result in `awayMs`, and a task of `latency(tasks)` ms has settled; a result comes every
   * max(awayMs, latency / tasks) ms (the consumer's pace, or the producers'). The limits read after
   * each return.
   */
  const drive = (latency: (tasks: number) => number, awayMs: number, returns: number, window = 64, pace?: ConsumerPace) => {
    let t = 0;
    pace ??= new ConsumerPace(() => t);
    let tasks = pace.limit(window);
    const limits = Array.from({ length: returns }, () => {
      t += Math.max(awayMs, latency(tasks) / tasks);
      pace!.settled(latency(tasks));
      pace!.consumed(awayMs, 1);
      return (tasks = pace!.limit(window));
    });
    return { limits, pace };
  };

  it("two in flight until four tasks are timed; as many for a consumer slower than a task", () => {
    assert.equal(new ConsumerPace().limit(64), 2);
    assert.deepEqual(drive(() => 0.5, 2, 40).limits, Array(40).fill(2));
  });

  it("grows by one an epoch while that raises the pace, up to what the consumer takes; falls as the consumer slows", () => {
    // Tasks of 1 ms, a consumer taking 0.1 ms a result: ten in flight keep it busy.
    const { limits, pace } = drive(() => 1, 0.1, 600);
    assert.deepEqual(limits.slice(0, 20), [2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4]);
    assert.ok(limits.every((n, k) => k === 0 || n >= limits[k - 1] - 1), "never fell by more than one (an undone growth)");
    const settled = limits.slice(-100);
    assert.ok(Math.min(...settled) >= 9 && Math.max(...settled) <= 11, `settled at ${Math.min(...settled)}-${Math.max(...settled)}`);
    // The consumer slows to 1.5 ms a result: the count falls to two as its pace does (its recent past weighs more), never growing meanwhile.
    const slower = drive(() => 1, 1.5, 80, 64, pace).limits;
    assert.ok(slower.every((n, k) => k === 0 || n <= slower[k - 1]), `never grew while the consumer slowed: ${slower}`);
    assert.equal(slower.at(-1), 2);
    // A window of three bounds it whatever the pace.
    assert.deepEqual(drive(() => 1, 0.01, 200, 3).limits.slice(-3), [3, 3, 3]);
  });

  it("threads sharing the consumer's cores: a task slower for every one more in flight starts no more of them", () => {
    // Each task in flight makes every task 0.5 ms slower (two cores shared by all the threads): the
    // task times alone call for ever more (0.5 × tasks / 0.3 + 1), but the pace stays 2 a millisecond.
    const { limits } = drive((tasks) => 0.5 * tasks, 0.3, 600);
    assert.ok(Math.max(...limits) <= 3, `went up to ${Math.max(...limits)} tasks`);
  });

  it("a stall counts for its task only: the quickest of the recent sixteen tasks sets the pace", () => {
    const { pace } = drive(() => 0.5, 2, 8);
    pace.settled(500); // one task held 500 ms (a collection, a preempted thread)
    pace.consumed(2, 1);
    assert.equal(pace.limit(64), 2);
  });
});
