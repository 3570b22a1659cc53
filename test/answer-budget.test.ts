/** AnswerBudget: runtime answers being read share a budget; the first reader always reads, the others wait their turn. */
import { strict as assert } from "node:assert";
import { AnswerBudget, FREE_BYTES } from "../server/bridge/answer-budget";

describe("the budget of runtime answers being read", () => {
  it("past it, readers wait until the one that holds the most ends; that one never waits, so none waits for good", async () => {
    const budget = new AnswerBudget(4 * FREE_BYTES);
    const [a, b, c] = [{}, {}, {}];
    for (const reader of [a, b, c]) budget.begin(reader);
    await budget.take(a, FREE_BYTES); // a slow answer that began first, holding little
    await budget.take(b, 2 * FREE_BYTES);
    await budget.take(c, FREE_BYTES);
    // b holds the most: it reads past the budget rather than wait behind a (a slow first answer held everything up).
    await budget.take(b, 8 * FREE_BYTES);
    let cTook = false;
    const more = budget.take(c, 1).then(() => (cTook = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(cTook, false, "c waits while 12 MiB are held");
    budget.end(b);
    await more;
    assert.equal(cTook, true, "2 MiB held: it fits");
  });

  it("a reader's first MiB never waits: small answers (a health check, a small Apply) are not held behind big ones", async () => {
    const budget = new AnswerBudget(FREE_BYTES);
    const [big, small] = [{}, {}];
    budget.begin(big);
    budget.begin(small);
    await budget.take(big, 10 * FREE_BYTES);
    await budget.take(small, FREE_BYTES - 1);
    let took = false;
    const past = budget.take(small, 2).then(() => (took = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(took, false, "past its free MiB it waits");
    budget.end(big);
    await past;
  });

  it("a wait ends when its request is aborted", async () => {
    const budget = new AnswerBudget(FREE_BYTES);
    const [a, b] = [{}, {}];
    budget.begin(a);
    budget.begin(b);
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
