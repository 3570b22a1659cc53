/**
 * Wire-level fuzzing: malformed bytes that no SDK would send, over a raw HTTP/2 client
 * (test/raw-grpc.ts), against real servers on 127.0.0.1:0. For every RPC the server registers (the
 * Tesseract service, health, reflection v1 and v1alpha), a fixed catalogue and 150 seeded
 * mutations of a valid request (test/wire-mutations.ts). The contract (docs/limits-and-errors.md, "Hostile bytes"):
 * every call gets a status, never INTERNAL or UNKNOWN for bad input, with a grpc-message under
 * 4 KiB; the HTTP/2 session keeps serving; nothing is left in flight; memory returns to its
 * baseline; a server in its own process never exits. `npm run bench:wire-fuzz` is the long run.
 */
import { strict as assert } from "node:assert";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import { startServer, type RunningServer } from "../index";
import { silentLogger } from "../server/log";
import { serveProcess, type ServeProcess } from "./helpers";
import { RawGrpcSession } from "./raw-grpc";
import { bodyHex, cases, focusedCases, judge, RPCS, statusName, TESSERACTS, WireFuzzer, type Outcome, type TesseractName, type WireCase } from "./wire-mutations";

/** Seeded cases per RPC (on top of the catalogue); bench/wire-fuzz.ts runs many more. */
const CASES = Number(process.env.WIRE_FUZZ_CASES ?? 150);
const SEED = Number(process.env.WIRE_FUZZ_SEED ?? 42);
/** A local server answers these within milliseconds; a call still open after this has no status coming. */
const TIMEOUT_MS = 3000;
/** Calls left without a status before an RPC's run stops (each costs TIMEOUT_MS). */
const MAX_HANGS = 2;
/** Heap growth (after GC) allowed over the whole run: generous, so that only a real leak fails. */
const HEAP_SLACK = 64 << 20;

/** A GC to call before measuring, without needing --expose-gc on the command line. */
function gcFunction(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

function heap(gc: () => void): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Distinct defects (kind and mutation family), each with its first example, for a failure message. */
function summarize(outcomes: Outcome[]): string[] {
  const groups = new Map<string, { count: number; example: Outcome; detail: string }>();
  for (const o of outcomes) {
    for (const d of o.defects) {
      const key = `${o.c.rpc}: ${d.kind} <- ${o.c.family}`;
      const g = groups.get(key);
      if (g) g.count++;
      else groups.set(key, { count: 1, example: o, detail: d.detail });
    }
  }
  return [...groups].map(([key, g]) => `${key} (${g.count}×; status ${statusName(g.example.r.grpcStatus)})\n      e.g. ${g.example.c.id} [${g.example.c.tesseract}]: ${g.example.c.recipe}\n      => ${g.detail}\n      body ${bodyHex(g.example.c, 200)}`);
}

function assertNoDefects(outcomes: Outcome[], what: string): void {
  const bad = outcomes.filter((o) => o.defects.length > 0);
  const lines = summarize(bad);
  assert.equal(bad.length, 0, `${bad.length} of ${outcomes.length} ${what} broke the contract; ${lines.length} distinct defects:\n  ${lines.join("\n  ")}`);
}

describe("wire-level fuzzing (raw HTTP/2, malformed bytes)", function () {
  this.timeout(90_000);
  const servers = {} as Record<TesseractName, RunningServer>;
  let fuzzer: WireFuzzer;
  let gc: () => void;
  let baseline = 0;
  let started = 0;
  let sent = 0;
  const statuses = new Map<string, number>();

  async function run(c: WireCase): Promise<Outcome> {
    const o = await fuzzer.run(c);
    sent++;
    const name = o.r.timedOut ? "no status" : statusName(o.r.grpcStatus);
    statuses.set(name, (statuses.get(name) ?? 0) + 1);
    return o;
  }

  before(async () => {
    started = performance.now();
    for (const t of TESSERACTS) servers[t] = await startServer({ tesseract: t, host: "127.0.0.1", port: 0, workers: 0, logger: silentLogger });
    fuzzer = new WireFuzzer({ meshstats: servers.meshstats.address, vectoradd: servers.vectoradd.address }, { timeoutMs: TIMEOUT_MS, probeEvery: 10, probeTimeoutMs: 1500 });
    gc = gcFunction();
    // Warm up every path once, so the baseline includes what the first calls allocate for good.
    for (const spec of RPCS) for (const c of cases(spec, SEED, 2)) await run(c);
    baseline = heap(gc);
  });

  after(async () => {
    await fuzzer?.close();
    await Promise.all(Object.values(servers).map((s) => s.close(0)));
    const seen = [...statuses].map(([k, v]) => `${k} ${v}`).join(", ");
    console.log(`    wire fuzz: ${sent} calls, seed ${SEED}, ${((performance.now() - started) / 1000).toFixed(1)} s (${seen})`);
  });

  it("the generator's valid requests are answered as valid over the raw client", async () => {
    const outcomes: Outcome[] = [];
    for (const spec of RPCS) for (const c of cases(spec, SEED, 2)) outcomes.push(await run(c));
    assertNoDefects(outcomes, "valid requests");
    for (const o of outcomes) assert.equal(o.r.httpStatus, 200, o.c.id);
  });

  for (const spec of RPCS) {
    it(`${spec.name}: the catalogue and ${CASES} seeded mutations each get a short, non-INTERNAL/UNKNOWN status, and the session survives`, async () => {
      const all = [...cases(spec, SEED, CASES, 2), ...TESSERACTS.flatMap((t) => focusedCases(spec, t))];
      const outcomes: Outcome[] = [];
      let hangs = 0;
      for (const c of all) {
        const o = await run(c);
        outcomes.push(o);
        if (o.r.timedOut && ++hangs >= MAX_HANGS) break;
      }
      // The last cases' session is checked too.
      for (const t of TESSERACTS) {
        const lost = await fuzzer.check(t);
        if (lost) outcomes.push({ ...outcomes[outcomes.length - 1], defects: [{ kind: "session lost", detail: lost }] });
      }
      const stopped = hangs >= MAX_HANGS ? ` (stopped after ${outcomes.length} of ${all.length}: ${MAX_HANGS} calls got no status)` : "";
      assertNoDefects(outcomes, `${spec.name} calls${stopped}`);
    });
  }

  it("afterwards nothing is left in flight and memory returns to its baseline", async () => {
    await fuzzer.close(); // the client's own sessions and buffers go too
    for (const t of TESSERACTS) {
      const calls = servers[t].calls;
      assert.deepEqual({ inFlight: calls.inFlightCount, jobsRunning: calls.jobsRunning, jobsWaiting: calls.jobsWaiting }, { inFlight: 0, jobsRunning: 0, jobsWaiting: 0 }, t);
    }
    const grown = heap(gc) - baseline;
    assert.ok(grown < HEAP_SLACK, `heap + array buffers grew by ${(grown / 2 ** 20).toFixed(1)} MiB over the run (allowed ${HEAP_SLACK / 2 ** 20} MiB)`);
  });

  describe("servers in child processes (an unhandled rejection or a stack overflow would end them)", () => {
    const children = {} as Record<TesseractName, ServeProcess>;
    before(async () => {
      // Default workers ("auto"): the worker-thread path is exercised too.
      for (const t of TESSERACTS) children[t] = await serveProcess([t, "--port", "0"]);
    });
    after(async () => {
      await Promise.all(Object.values(children).map((c) => c.stop()));
    });

    it("the whole catalogue, for every RPC, never ends the process, and valid calls are answered afterwards", async () => {
      const all = RPCS.flatMap((spec) => TESSERACTS.flatMap((t) => focusedCases(spec, t)));
      let previous = "(none)";
      // Many at once, each on its own session: a wedged session cannot hold up the others.
      for (let i = 0; i < all.length; i += 32) {
        const batch = all.slice(i, i + 32);
        await Promise.all(
          batch.map(async (c) => {
            const session = new RawGrpcSession(children[c.tesseract].address);
            try {
              await session.call(c.path, c.writes, { timeoutMs: TIMEOUT_MS });
            } finally {
              await session.close();
            }
          }),
        );
        for (const t of TESSERACTS) {
          const { child } = children[t];
          assert.ok(child.exitCode === null && child.signalCode === null, `the ${t} server exited (code ${child.exitCode}, signal ${child.signalCode}) during cases ${batch[0].id} … ${batch[batch.length - 1].id} (previous batch ended ${previous})`);
        }
        previous = batch[batch.length - 1].id;
      }
      for (const spec of RPCS) {
        for (const c of cases(spec, SEED, 2)) {
          const session = new RawGrpcSession(children[c.tesseract].address);
          try {
            const r = await session.call(c.path, c.writes, { timeoutMs: TIMEOUT_MS });
            assert.deepEqual(judge(c, r), [], `${c.id} after the catalogue`);
          } finally {
            await session.close();
          }
        }
      }
    });
  });
});
