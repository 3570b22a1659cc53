/**
 * The wire-level fuzzer of test/wire-fuzz.test.ts as a long run against servers in child processes
 * (so a crash is seen, recorded and the server restarted):
 *
 *   npm run bench:wire-fuzz [-- --seconds 60 --seed 1 --count N --timeout-ms 3000 --lanes 8]
 *   (or WIRE_FUZZ_SECONDS, WIRE_FUZZ_SEED, WIRE_FUZZ_COUNT, WIRE_FUZZ_TIMEOUT_MS, WIRE_FUZZ_LANES)
 *
 * Cases run in `lanes` sequential lanes at once, each on its own HTTP/2 sessions (so that a call
 * left without a status costs one lane its timeout, not the run); a crash names the cases in flight.
 *
 * First the fixed catalogue for every RPC and Tesseract, then seeded mutations round-robin over the
 * RPCs until the time or the count is up. Prints a table of outcomes by RPC × status, then every
 * distinct failure (INTERNAL/UNKNOWN, no status, long grpc-message, lost session, crash, ...) with a
 * reproduction: the case id (test/wire-mutations.ts `caseFromId` regenerates it), its recipe and the
 * hex of its body, shrunk where the failure survives shrinking. Writes bench/results/wire-fuzz.json.
 * Exits 1 if anything failed.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { frame } from "../test/raw-grpc";
import { serveProcess, type ServeProcess } from "../test/helpers";
import { bodyHex, cases, focusedCases, RPCS, statusName, TESSERACTS, WireFuzzer, type Defect, type Outcome, type TesseractName, type WireCase } from "../test/wire-mutations";
import { numericArg } from "./numeric-arg";

const arg = numericArg;
const SECONDS = arg("seconds", "WIRE_FUZZ_SECONDS", 60);
const SEED = arg("seed", "WIRE_FUZZ_SEED", 1);
const COUNT = arg("count", "WIRE_FUZZ_COUNT", Infinity);
const TIMEOUT_MS = arg("timeout-ms", "WIRE_FUZZ_TIMEOUT_MS", 3000);
const LANES = arg("lanes", "WIRE_FUZZ_LANES", 8);

interface Failure {
  rpc: string;
  kind: Defect["kind"];
  family: string;
  status: string;
  count: number;
  caseId: string;
  tesseract: TesseractName;
  recipe: string;
  detail: string;
  bodyBytes: number;
  bodyHex: string;
  /** Set when a smaller body still fails the same way. */
  shrunkHex?: string;
}

const servers = {} as Record<TesseractName, ServeProcess>;
let exited: { t: TesseractName; code: number | null; signal: string | null } | undefined;

async function start(t: TesseractName): Promise<void> {
  const s = await serveProcess([t, "--port", "0"]);
  s.child.once("exit", (code, signal) => (exited ??= { t, code, signal }));
  servers[t] = s;
}

function rssMiB(t: TesseractName): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${servers[t].child.pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}

const addresses = () => ({ meshstats: servers.meshstats.address, vectoradd: servers.vectoradd.address });

/** A body that is one honest frame: its message, for shrinking. */
function honestMessage(c: WireCase): Buffer | undefined {
  const body = Buffer.concat(c.writes);
  if (body.length < 5 || body.length > 65_536 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) return undefined;
  return body.subarray(5);
}

/** Removes chunks of the message while the same defect kind and status come back (bounded tries). */
async function shrink(fuzzer: WireFuzzer, o: Outcome, kind: Defect["kind"]): Promise<string | undefined> {
  let message = honestMessage(o.c);
  if (!message || kind === "no status" || kind === "session lost" || kind === "stream reset") return undefined;
  // The same failure: same kind, status and message (request ids and numbers aside).
  const norm = (m = "") => m.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "ID").replace(/\d+/g, "N").slice(0, 200);
  const same = (r: Outcome) => r.defects.some((d) => d.kind === kind) && r.r.grpcStatus === o.r.grpcStatus && norm(r.r.grpcMessage) === norm(o.r.grpcMessage);
  let tries = 0;
  for (let chunk = message.length >> 1; chunk >= 1 && tries < 200; chunk >>= 1) {
    for (let at = 0; at + chunk <= message.length && tries < 200; ) {
      const candidate = Buffer.concat([message.subarray(0, at), message.subarray(at + chunk)]);
      tries++;
      const r = await fuzzer.run({ ...o.c, writes: [frame(candidate)] });
      if (same(r)) message = candidate;
      else at += chunk;
    }
  }
  return message.length + 5 < Buffer.concat(o.c.writes).length ? frame(message).toString("hex") : undefined;
}

async function main(): Promise<void> {
  for (const t of TESSERACTS) await start(t);
  const newFuzzer = () => new WireFuzzer(addresses(), { timeoutMs: TIMEOUT_MS, probeEvery: 10, probeTimeoutMs: TIMEOUT_MS });
  const rssStart = Object.fromEntries(TESSERACTS.map((t) => [t, rssMiB(t)]));
  const table = new Map<string, Record<string, number>>();
  const failures = new Map<string, Failure & { outcome: Outcome }>();
  const started = performance.now();
  let sent = 0;
  /** Milliseconds spent per mutation family, and the slowest answered calls. */
  const familyMs = new Map<string, { n: number; ms: number }>();
  const slowest: { caseId: string; recipe: string; ms: number; status: string }[] = [];

  const catalogue = RPCS.flatMap((spec) => TESSERACTS.flatMap((t) => focusedCases(spec, t)));
  const seeded = RPCS.map((spec) => cases(spec, SEED, Number.MAX_SAFE_INTEGER));
  let taken = 0;
  const next = (): WireCase | undefined => {
    if (taken >= COUNT) return undefined;
    if ((performance.now() - started) / 1000 >= SECONDS) return undefined;
    const i = taken++;
    return i < catalogue.length ? catalogue[i] : seeded[(i - catalogue.length) % RPCS.length].next().value;
  };

  const inFlight = new Set<string>();
  let generation = 0;
  let restarting: Promise<void> | undefined;
  /** After a server exited: restart it once, whichever lane notices first. */
  async function recover(): Promise<string | undefined> {
    if (!exited) return undefined;
    const about = `the ${exited.t} server exited (code ${exited.code}, signal ${exited.signal}); cases in flight: ${[...inFlight].join(", ")}`;
    restarting ??= (async () => {
      const t = exited!.t;
      await start(t);
      exited = undefined;
      generation++;
      restarting = undefined;
    })();
    await restarting;
    return about;
  }

  function record(c: WireCase, o: Outcome): void {
    sent++;
    const fm = familyMs.get(c.family) ?? { n: 0, ms: 0 };
    fm.n++;
    fm.ms += o.r.ms;
    familyMs.set(c.family, fm);
    if (!o.r.timedOut && o.r.ms > 200) {
      slowest.push({ caseId: c.id, recipe: c.recipe, ms: Math.round(o.r.ms), status: statusName(o.r.grpcStatus) });
      slowest.sort((a, b) => b.ms - a.ms).splice(10);
    }
    const row = table.get(c.rpc) ?? {};
    const col = o.r.timedOut ? "no status" : statusName(o.r.grpcStatus);
    row[col] = (row[col] ?? 0) + 1;
    table.set(c.rpc, row);
    for (const d of o.defects) {
      const key = `${c.rpc}|${d.kind}|${c.family}|${statusName(o.r.grpcStatus)}`;
      const f = failures.get(key);
      if (f) f.count++;
      else
        failures.set(key, {
          rpc: c.rpc,
          kind: d.kind,
          family: c.family,
          status: statusName(o.r.grpcStatus),
          count: 1,
          caseId: c.id,
          tesseract: c.tesseract,
          recipe: c.recipe,
          detail: d.detail,
          bodyBytes: Buffer.concat(c.writes).length,
          bodyHex: bodyHex(c, 4096),
          outcome: o,
        });
    }
    if (sent % 500 === 0) process.stderr.write(`  ${sent} cases, ${failures.size} distinct failures, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }

  async function lane(): Promise<void> {
    let fuzzer = newFuzzer();
    let mine = generation;
    for (let c = next(); c; c = next()) {
      inFlight.add(c.id);
      const o = await fuzzer.run(c);
      const crash = await recover();
      inFlight.delete(c.id);
      if (crash) o.defects.push({ kind: "server exited", detail: crash });
      if (mine !== generation) {
        await fuzzer.close();
        fuzzer = newFuzzer();
        mine = generation;
      }
      record(c, o);
    }
    await fuzzer.close();
  }
  await Promise.all(Array.from({ length: LANES }, lane));
  const fuzzer = newFuzzer();
  const seconds = (performance.now() - started) / 1000;

  // Shrink the reproductions (after the run, so the time budget is the fuzzing's).
  // At most a minute in all, one failure per RPC and kind first.
  const shrinkUntil = performance.now() + 60_000;
  const order = [...failures.values()].sort((a, b) => Number(a.family.includes("stacked")) - Number(b.family.includes("stacked")) || a.bodyBytes - b.bodyBytes);
  for (const f of order) {
    if (performance.now() > shrinkUntil) break;
    f.shrunkHex = await shrink(fuzzer, f.outcome, f.kind);
  }
  await fuzzer.close();
  const rssEnd = Object.fromEntries(TESSERACTS.map((t) => [t, rssMiB(t)]));
  const alive = TESSERACTS.filter((t) => servers[t].child.exitCode === null && servers[t].child.signalCode === null);
  await Promise.all(TESSERACTS.map((t) => servers[t].stop()));

  const columns = [...new Set([...table.values()].flatMap((r) => Object.keys(r)))].sort();
  const rows = RPCS.filter((s) => table.has(s.name)).map((s) => ({ rpc: s.name, ...Object.fromEntries(columns.map((c) => [c, table.get(s.name)![c] ?? 0])) }));
  console.table(rows);
  console.log(`${sent} cases in ${seconds.toFixed(1)} s, seed ${SEED}; server RSS MiB start ${JSON.stringify(rssStart)}, end ${JSON.stringify(rssEnd)}; alive at the end: ${alive.join(", ") || "none"}`);
  const list = [...failures.values()].map(({ outcome: _o, ...f }) => f);
  console.log(`\n${list.length} distinct failures (RPC | kind | mutation family | status):`);
  for (const f of list) {
    console.log(`\n- ${f.rpc} | ${f.kind} | ${f.family} | ${f.status} (${f.count}×)\n  case ${f.caseId} [${f.tesseract}]: ${f.recipe}\n  => ${f.detail}`);
    console.log(`  body (${f.bodyBytes} bytes): ${f.bodyHex.length > 400 ? `${f.bodyHex.slice(0, 400)}…` : f.bodyHex}`);
    if (f.shrunkHex) console.log(`  shrunk (${f.shrunkHex.length / 2} bytes): ${f.shrunkHex}`);
  }

  const families = [...familyMs].map(([family, { n, ms }]) => ({ family, cases: n, meanMs: +(ms / n).toFixed(1), totalS: +(ms / 1000).toFixed(1) })).sort((a, b) => b.totalS - a.totalS);
  console.log("\ntime by mutation family (top 12):");
  console.table(families.slice(0, 12));
  if (slowest.length) console.log("slowest answered calls (> 200 ms):", slowest);

  const dir = path.join(__dirname, "../../bench/results");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "wire-fuzz.json");
  const machine = { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, date: new Date().toISOString() };
  fs.writeFileSync(file, JSON.stringify({ machine, run: { seed: SEED, seconds, cases: sent, timeoutMs: TIMEOUT_MS, rssStart, rssEnd }, results: rows, failures: list, families, slowest }, null, 2));
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
  process.exit(list.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
