/**
 * A tesseract-core runtime restarted under a call (a container restarted by Docker or Kubernetes:
 * its port refuses connections for a while, or a proxy in front answers 502/503), and replicas that
 * hang: the call waits for the runtime to come back (--runtime-retry-ms), or moves the evaluation to
 * another replica, instead of failing and losing the evaluations already done. Against the fake
 * tesseract-core runtime serving Mesh Stats (test/fixtures/tesseract-core/), whose derivatives are
 * known; evaluations are counted by the fake itself.
 */
import { strict as assert } from "node:assert";
import { startServer, type ServeOptions } from "../index";
import { silentLogger } from "../server/log";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";
import { FakeHttpStatus, startFakeTesseractCore, type FakeTesseract, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStatsInputs as inputs, reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { Algorithm } from "../client";
import { clientRejects, flat, LogLines } from "./helpers";

const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
/** layers.[0].weights: two elements, d barycenter[c] / d weights[k] = 1 (mesh-stats.ts). */
const WEIGHTS = { inputPaths: ["layers.[0].weights"], outputPaths: ["barycenter"], options: CENTRAL };

const WAITING = "a tesseract-core runtime could not be reached; evaluations are sent again until it answers (--runtime-retry-ms)";
const BACK = "a tesseract-core runtime answered again";

/** Mesh Stats whose applies are counted as the fake computes them (a request dropped before its answer is not). */
function countedMeshStats(extra: Partial<FakeTesseract> = {}) {
  const base = meshStats();
  const computed = { count: 0 };
  const tesseract: FakeTesseract = {
    ...base,
    apply: (decoded) => {
      computed.count++;
      return base.apply(decoded);
    },
    ...extra,
  };
  return { tesseract, computed };
}

/** A server over `fakes` (their URLs, comma-separated) and a reflected client; `stop` closes all of them. */
async function over(fakes: RunningFake[], options: Partial<ServeOptions> = {}) {
  const server = await startServer({ tesseract: fakes.map((f) => f.url).join(","), port: 0, logger: silentLogger, evalCacheBytes: 0, ...options });
  const { client } = await reflectedClient(server.address);
  const stop = async () => {
    client.close();
    await server.close(0);
    await Promise.all(fakes.map((f) => f.close()));
  };
  return { client, stop };
}

function assertWeightsJacobian(d: unknown) {
  const values = flat(d);
  assert.equal(values.length, 3 * 2);
  values.forEach((v, i) => assert.ok(Math.abs(v - 1) <= 1e-6, `d barycenter / d weights [${i}] = ${v}, expected 1`));
}

describe("a tesseract-core runtime restarting or hanging under a call", function () {
  this.timeout(20000);

  it("a runtime stopped mid-Jacobian and restarted on the same port: the call waits for it and completes with the analytic values, each evaluation computed once (it failed UNAVAILABLE at once, losing the evaluations done)", async () => {
    let fake!: RunningFake;
    let stopped = false;
    // The third request to arrive stops the runtime under it (a container killed mid-apply): its
    // connection is dropped and the port refuses, until the test restarts it.
    const { tesseract, computed } = countedMeshStats({
      hold: () => {
        if (fake.applyCalls !== 3 || stopped) return Promise.resolve();
        stopped = true;
        void fake.stop();
        return new Promise<void>(() => {});
      },
    });
    fake = await startFakeTesseractCore(tesseract);
    const logs = new LogLines();
    // One evaluation at a time, so that one request is in flight when the runtime stops.
    const { client, stop } = await over([fake], { logger: logs.logger, concurrency: 1 });
    try {
      const waiting = logs.next((line) => line.msg === WAITING);
      const back = logs.next((line) => line.msg === BACK);
      const call = client.jacobian({ inputs: inputs(), ...WEIGHTS });
      const line = await Promise.race([waiting, call.then(() => assert.fail("answered before the runtime came back"))]);
      assert.equal(line.level, 40);
      assert.equal(line.retry_ms, 30_000);
      assert.match(String(line.why), new RegExp(`^${fake.url.replace(/\./g, "\\.")}: ECONNREFUSED`));
      await fake.restart();
      const { jacobian, stats } = await call;
      assertWeightsJacobian(jacobian.barycenter["layers.[0].weights"]);
      // Central, n = 2: four evaluations, each computed once; the request dropped by the stop arrived, and was sent again.
      assert.equal(Number(stats.apply_calls), 4);
      assert.equal(computed.count, 4);
      assert.equal(fake.applyCalls, 5);
      const recovered = await back;
      assert.equal(recovered.runtime, fake.url);
      assert.ok(Number(recovered.down_ms) >= 0);
    } finally {
      await stop();
    }
  });

  it("a proxy answering 502, then 503, while its runtime restarts: the evaluation is sent again until the runtime answers (502 was UNAVAILABLE at once)", async () => {
    let refusing = 2;
    const base = meshStats();
    const proxy = await startFakeTesseractCore({
      ...base,
      apply: (decoded) => {
        if (refusing > 0) throw new FakeHttpStatus(refusing-- === 2 ? 502 : 503, "upstream restarting");
        return base.apply(decoded);
      },
    });
    const { client, stop } = await over([proxy]);
    try {
      const out = await client.apply(inputs());
      assert.equal(flat(out.barycenter).length, 3);
      assert.equal(proxy.applyCalls, 3);
    } finally {
      await stop();
    }
  });

  it("a runtime that does not come back: UNAVAILABLE naming it once --runtime-retry-ms has passed", async () => {
    const fake = await startFakeTesseractCore(meshStats());
    const { client, stop } = await over([fake], { runtimeRetryMs: 1500 });
    try {
      await fake.stop();
      const url = fake.url.replace(/\./g, "\\.");
      await clientRejects(client.apply(inputs()), "UNAVAILABLE", new RegExp(`^no tesseract-core runtime answered POST /apply \\(${url}: ECONNREFUSED\\), sent \\d+ times; none answered within --runtime-retry-ms \\(1500 ms\\)$`));
      await clientRejects(client.jacobian({ inputs: inputs(), ...WEIGHTS }), "UNAVAILABLE", new RegExp(`^evaluation at .* failed: no tesseract-core runtime answered POST /apply \\(${url}: ECONNREFUSED\\), sent \\d+ times; none answered within --runtime-retry-ms \\(1500 ms\\)$`));
    } finally {
      await stop();
    }
  });

  it("a call whose deadline comes before --runtime-retry-ms has passed ends DEADLINE_EXCEEDED at its deadline, not at the window's end", async () => {
    const fake = await startFakeTesseractCore(meshStats());
    // A window longer than this test may run: only the deadline can end these calls in time.
    const { client, stop } = await over([fake], { runtimeRetryMs: 600_000 });
    try {
      await fake.stop();
      await clientRejects(client.apply(inputs(), { deadline: 1000 }), "DEADLINE_EXCEEDED");
      await clientRejects(client.jacobian({ inputs: inputs(), ...WEIGHTS }, { deadline: 1000 }), "DEADLINE_EXCEEDED");
    } finally {
      await stop();
    }
  });

  it("a call cancelled while it waits for a runtime to come back sends no more requests to it", async () => {
    const { tesseract, computed } = countedMeshStats();
    const fake = await startFakeTesseractCore(tesseract);
    const logs = new LogLines();
    const { client, stop } = await over([fake], { logger: logs.logger, concurrency: 1 });
    try {
      await fake.stop();
      const waiting = logs.next((line) => line.msg === WAITING);
      const controller = new AbortController();
      const call = client.jacobian({ inputs: inputs(), ...WEIGHTS }, { signal: controller.signal });
      await Promise.race([waiting, call.then(() => assert.fail("answered while the runtime was stopped"))]);
      controller.abort();
      await clientRejects(call, "CANCELLED");
      await fake.restart();
      // With one request at a time (--concurrency 1), this Apply has its turn only once the
      // cancelled evaluation has given its slot back, and with it its next try.
      const out = await client.apply({ ...inputs(), scale: 3 });
      assert.equal(flat(out.barycenter).length, 3);
      assert.equal(fake.applyCalls, 1);
      assert.equal(computed.count, 1);
    } finally {
      await stop();
    }
  });

  it("with several replicas, an evaluation past --eval-timeout-ms on a hanging one goes to another, and the call completes (it failed DEADLINE_EXCEEDED, losing the evaluations done)", async () => {
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const hanging = await startFakeTesseractCore({ ...meshStats(), hold: () => hung });
    const { tesseract, computed } = countedMeshStats();
    const good = await startFakeTesseractCore(tesseract);
    const { client, stop } = await over([hanging, good], { concurrency: 2, evalTimeoutMs: 2000 });
    try {
      // A fresh server's first request goes to the first URL's runtime, which hangs: it is moved on.
      const out = await client.apply(inputs());
      assert.equal(flat(out.barycenter).length, 3);
      assert.deepEqual([hanging.applyCalls, good.applyCalls, computed.count], [1, 1, 1]);
      const { jacobian, stats } = await client.jacobian({ inputs: inputs(), ...WEIGHTS });
      assertWeightsJacobian(jacobian.barycenter["layers.[0].weights"]);
      assert.equal(Number(stats.apply_calls), 4);
      // Every evaluation computed once, by the replica that answers.
      assert.equal(computed.count, 1 + 4);
      assert.equal(good.applyCalls, 1 + 4);
    } finally {
      release();
      await stop();
    }
  });

  it("with one runtime, an evaluation past --eval-timeout-ms is DEADLINE_EXCEEDED naming it and the runtime, sent once; with several that all hang, naming each", async () => {
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    const fakes = [await startFakeTesseractCore({ ...meshStats(), hold: () => hung }), await startFakeTesseractCore({ ...meshStats(), hold: () => hung })];
    const [alone, shared] = [await over([fakes[0]], { evalTimeoutMs: 300 }), await over(fakes, { evalTimeoutMs: 300 })];
    const [a, b] = fakes.map((f) => f.url.replace(/\./g, "\\."));
    try {
      await clientRejects(alone.client.apply(inputs()), "DEADLINE_EXCEEDED", new RegExp(`^apply did not return within the per-evaluation timeout of 300 ms \\(--eval-timeout-ms\\) \\(Apply\\); POST /apply on ${a} was aborted$`));
      assert.equal(fakes[0].applyCalls, 1);
      await clientRejects(shared.client.apply(inputs()), "DEADLINE_EXCEEDED", new RegExp(`^apply did not return within the per-evaluation timeout of 300 ms \\(--eval-timeout-ms\\) \\(Apply\\) on any runtime \\((${a}|${b}): no answer within 300 ms; (${a}|${b}): no answer within 300 ms\\)$`));
      assert.deepEqual(fakes.map((f) => f.applyCalls), [2, 1]);
    } finally {
      release();
      await Promise.all([alone.stop(), shared.stop()]);
    }
  });

  it("--runtime-retry-ms 0: a refused connection is UNAVAILABLE at once, sent once", async () => {
    const fake = await startFakeTesseractCore(meshStats());
    const { client, stop } = await over([fake], { runtimeRetryMs: 0 });
    try {
      await fake.stop();
      await clientRejects(client.apply(inputs()), "UNAVAILABLE", new RegExp(`^no tesseract-core runtime answered POST /apply \\(${fake.url.replace(/\./g, "\\.")}: ECONNREFUSED\\)$`));
    } finally {
      await stop();
    }
  });
});
