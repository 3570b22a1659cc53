/** AnswerBudget: runtime answers being read share a budget; the first reader always reads, the others wait their turn. */
import { strict as assert } from "node:assert";
import { AnswerBudget } from "../server/bridge/answer-budget";

describe("the budget of runtime answers being read", () => {
  it("past it, readers wait until earlier ones end; the first never waits, so none waits for good", async () => {
    const budget = new AnswerBudget(100);
    const [a, b, c] = [{}, {}, {}];
    for (const reader of [a, b, c]) budget.begin(reader);
    await budget.take(b, 60);
    await budget.take(c, 40);
    // a began first: it reads past the budget rather than wait on readers that began after it.
    await budget.take(a, 500);
    let cTook = false;
    const more = budget.take(c, 10).then(() => (cTook = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(cTook, false, "c waits while 600 bytes are held");
    budget.end(a);
    await new Promise((r) => setImmediate(r));
    assert.equal(cTook, false, "100 held by b and c: 10 more do not fit, and b began before c");
    budget.end(b);
    await more;
    assert.equal(cTook, true);
  });

  it("a wait ends when its request is aborted", async () => {
    const budget = new AnswerBudget(10);
    const [a, b] = [{}, {}];
    budget.begin(a);
    budget.begin(b);
    await budget.take(a, 10);
    const abort = new AbortController();
    const waiting = budget.take(b, 5, abort.signal);
    abort.abort(new Error("cancelled"));
    await assert.rejects(waiting, /cancelled/);
    budget.end(b);
    budget.end(a);
    await budget.take({}, 10); // nothing held
  });
});
