/** AnswerBudget: runtime answers being read share a budget; the first reader always reads, the others wait their turn. */
import { strict as assert } from "node:assert";
import { AnswerBudget, FREE_BYTES } from "../server/bridge/answer-budget";

/** `n` readers that have begun, in order. */
function begun(budget: AnswerBudget, n: number): object[] {
  return Array.from({ length: n }, () => {
    const reader = {};
    budget.begin(reader);
    return reader;
  });
}

/** Whether `take` still waits once the callbacks due now have run. */
async function waits(take: Promise<void>): Promise<boolean> {
  let settled = false;
  void take.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((r) => setImmediate(r));
  return !settled;
}

describe("the budget of runtime answers being read", () => {
  it("past it, readers wait until the one that holds the most ends; that one never waits, so none waits for good", async () => {
    const budget = new AnswerBudget(4 * FREE_BYTES);
    const [a, b, c] = begun(budget, 3);
    await budget.take(a, FREE_BYTES); // a slow answer that began first, holding little
    await budget.take(b, 2 * FREE_BYTES);
    await budget.take(c, FREE_BYTES);
    // b holds the most: it reads past the budget rather than wait behind a (a slow first answer held everything up).
    await budget.take(b, 8 * FREE_BYTES);
    const more = budget.take(c, 1);
    assert.ok(await waits(more), "c waits while 12 MiB are held");
    budget.end(b);
    await more; // 2 MiB held: it fits
  });

  it("a reader's first MiB never waits: small answers (a health check, a small Apply) are not held behind big ones", async () => {
    const budget = new AnswerBudget(FREE_BYTES);
    const [big, small] = begun(budget, 2);
    await budget.take(big, 10 * FREE_BYTES);
    await budget.take(small, FREE_BYTES - 1); // within its free MiB: at once
    const past = budget.take(small, 2);
    assert.ok(await waits(past), "past its free MiB it waits");
    budget.end(big);
    await past;
  });

  it("a wait ends when its request is aborted", async () => {
    const budget = new AnswerBudget(FREE_BYTES);
    const [a, b] = begun(budget, 2);
    await budget.take(a, 2 * FREE_BYTES);
    const abort = new AbortController();
    const waiting = budget.take(b, FREE_BYTES + 1, abort.signal);
    abort.abort(new Error("cancelled"));
    await assert.rejects(waiting, /cancelled/);
    budget.end(b);
    budget.end(a);
    await budget.take({}, FREE_BYTES); // nothing held
  });
});
