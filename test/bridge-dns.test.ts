/**
 * One host name with several addresses is several replicas of the same Tesseract: the resolver is
 * injected (no DNS server), the fake runtimes listen on 127.0.0.1, 127.0.0.2, 127.0.0.3 (all this
 * machine's loopback) at one port, as a headless Service's pods would. Evaluations spread over the
 * addresses, fail over when one stops, follow re-resolution (added replicas take evaluations,
 * removed ones finish those in flight), and https keeps the host name as the TLS server name.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import { EventEmitter, once } from "node:events";
import * as path from "node:path";
import { promisify } from "node:util";
import { Algorithm } from "../client";
import { startServer } from "../index";
import { loadTesseractCore } from "../server/bridge/tesseract-core";
import { RuntimeReplicas, type Lookup } from "../server/bridge/runtime-replicas";
import { silentLogger } from "../server/log";
import { applyRequests, barycenter, meshStatsInputs as inputs, reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { startFakeTesseractCore, type FakeTesseract, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";
import { clientRejects, flat } from "./helpers";

const HOST = "tesseract.test";
const CENTRAL = { algorithm: Algorithm.ALGORITHM_CENTRAL };
/** Central differences of barycenter over mesh.points (4 × 3): 24 evaluations. */
const JACOBIAN = { inputs: inputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: CENTRAL };

/** A resolver for HOST whose answer the test sets; it records the replicas the bridge reports. */
class Resolver {
  lookups = 0;
  failing = false;
  replicas: string[] = [];
  private readonly events = new EventEmitter();

  constructor(public addresses: string[]) {}

  readonly lookup: Lookup = async (hostname, options) => {
    this.lookups++;
    this.events.emit("lookup");
    assert.deepEqual(options, { all: true });
    if (this.failing || hostname !== HOST) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return this.addresses.map((address) => ({ address, family: 4 }));
  };

  readonly onChange = (replicas: string[]) => {
    this.replicas = replicas;
    this.events.emit("change");
  };

  /** Resolves once `count` lookups in all have been asked for. */
  async lookedUp(count: number): Promise<void> {
    while (this.lookups < count) await once(this.events, "lookup");
  }

  /** Resolves once the reported replicas are those at `addresses`. */
  async reports(port: number, addresses: string[]): Promise<void> {
    const expected = addresses.map((a) => `http://${HOST}:${port} (${a})`);
    while (this.replicas.join() !== expected.join()) await once(this.events, "change");
  }
}

/** Fake runtimes of `tesseract` on 127.0.0.1, 127.0.0.2, … at one port. */
async function fakesOnOnePort(count: number, tesseract: FakeTesseract = meshStats()): Promise<RunningFake[]> {
  const first = await startFakeTesseractCore(tesseract);
  const rest = [];
  for (let i = 2; i <= count; i++) rest.push(await startFakeTesseractCore(tesseract, { host: `127.0.0.${i}`, port: first.port }));
  return [first, ...rest];
}

/** A server bridging http://HOST:port, resolved by `resolver`; closed by `stop`. */
async function bridgedByName(port: number, resolver: Resolver, dnsRefreshMs = 0) {
  // runtimeRetryMs 0: a request that reaches no runtime fails at once, not after waiting for one to come back.
  const runtime = await loadTesseractCore(`http://${HOST}:${port}`, { lookup: resolver.lookup, onReplicasChange: resolver.onChange, dnsRefreshMs, runtimeRetryMs: 0 });
  const server = await startServer({ tesseract: runtime, port: 0, logger: silentLogger, concurrency: 4, evalCacheBytes: 0 }); // every Apply reaches a runtime: no f(x) cache
  const { client } = await reflectedClient(server.address);
  const stop = async () => {
    client.close();
    await server.close(0);
  };
  return { client, stop };
}

const calls = (fakes: RunningFake[]) => fakes.map((f) => f.applyCalls);

function assertJacobian(jacobian: Record<string, Record<string, unknown>>) {
  const values = flat(jacobian.barycenter["mesh.points"]);
  assert.equal(values.length, 36);
  values.forEach((v, k) => assert.ok(Math.abs(v - (Math.floor(k / 12) === k % 3 ? 2 / 4 : 0)) <= 1e-7, `jacobian[${k}] = ${v}`));
}

describe("tesseract-core bridge: a host name's addresses are replicas", function () {
  this.timeout(20000);

  it("loopback addresses beyond 127.0.0.1 can be listened on (what these tests stand on)", async () => {
    const fakes = await fakesOnOnePort(2);
    try {
      assert.deepEqual(await (await fetch(`http://127.0.0.2:${fakes[0].port}/health`)).json(), { status: "ok" });
      assert.deepEqual([fakes[0].healthCalls, fakes[1].healthCalls], [0, 1]);
    } finally {
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("evaluations spread over every address, each sent with the host name; one that stops: the others take its evaluations and the name is resolved again", async () => {
    const fakes = await fakesOnOnePort(2);
    const resolver = new Resolver(["127.0.0.1", "127.0.0.2"]);
    const { client, stop } = await bridgedByName(fakes[0].port, resolver);
    try {
      assert.deepEqual(resolver.replicas, [`http://${HOST}:${fakes[0].port} (127.0.0.1)`, `http://${HOST}:${fakes[0].port} (127.0.0.2)`]);
      assertJacobian((await client.jacobian(JACOBIAN)).jacobian);
      const [first, second] = calls(fakes);
      assert.ok(first > 0 && second > 0 && first + second === 24, `evaluations ${first} and ${second}: both addresses take some`);
      for (const f of fakes) assert.deepEqual([...f.hosts], [`${HOST}:${f.port}`]);

      await fakes[1].stop();
      const lookups = resolver.lookups;
      assertJacobian((await client.jacobian(JACOBIAN)).jacobian);
      assert.deepEqual(calls(fakes), [first + 24, second], "every evaluation of the second Jacobian on the address still up");
      assert.ok(resolver.lookups > lookups, "a connection failure resolves the name again");
      assert.deepEqual(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.deepEqual(calls(fakes), [first + 25, second]);
    } finally {
      await stop();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("re-resolution: a new address takes evaluations, one gone takes no more", async () => {
    const fakes = await fakesOnOnePort(3);
    const resolver = new Resolver(["127.0.0.1", "127.0.0.2"]);
    const { client, stop } = await bridgedByName(fakes[0].port, resolver, 10);
    try {
      resolver.addresses = ["127.0.0.1", "127.0.0.3"];
      await resolver.reports(fakes[0].port, resolver.addresses);
      assertJacobian((await client.jacobian(JACOBIAN)).jacobian);
      const [kept, gone, added] = calls(fakes);
      assert.ok(gone === 0 && added > 0 && kept + added === 24, `evaluations ${calls(fakes)}: the new address takes some, the one gone none`);
      // A failed resolution keeps the replicas it had (one resolution at a time: the second asked means the first has ended).
      resolver.failing = true;
      await resolver.lookedUp(resolver.lookups + 2);
      assertJacobian((await client.jacobian(JACOBIAN)).jacobian);
      const after = calls(fakes);
      assert.ok(after[1] === 0 && after[0] + after[2] === 48, `evaluations ${after}: the replicas kept take the second Jacobian`);
      assert.deepEqual(resolver.replicas, [`http://${HOST}:${fakes[0].port} (127.0.0.1)`, `http://${HOST}:${fakes[0].port} (127.0.0.3)`], "a failed resolution keeps the replicas");
    } finally {
      await stop();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("an address that goes away finishes the evaluations in flight on it", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const fakes = await fakesOnOnePort(2, { ...meshStats(), hold: () => held });
    const resolver = new Resolver(["127.0.0.1", "127.0.0.2"]);
    const { client, stop } = await bridgedByName(fakes[0].port, resolver, 10);
    try {
      const applies = [client.apply(inputs()), client.apply(inputs())];
      await Promise.all(fakes.map((f) => applyRequests(f, 1)));
      resolver.addresses = ["127.0.0.1"];
      await resolver.reports(fakes[0].port, ["127.0.0.1"]);
      release();
      for (const outputs of await Promise.all(applies)) assert.deepEqual(flat(outputs.barycenter), barycenter());
      assert.deepEqual([fakes[0].aborted, fakes[1].aborted], [0, 0]);
      await client.apply(inputs());
      assert.deepEqual(calls(fakes), [2, 1]);
    } finally {
      release();
      await stop();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("a request that reached no replica resolves the name and goes to the new address (a pod replaced)", async () => {
    const fakes = await fakesOnOnePort(2);
    const resolver = new Resolver(["127.0.0.1"]);
    const { client, stop } = await bridgedByName(fakes[0].port, resolver);
    try {
      await fakes[0].stop();
      resolver.addresses = ["127.0.0.2"];
      assert.deepEqual(flat((await client.apply(inputs())).barycenter), barycenter());
      assert.deepEqual(calls(fakes), [0, 1]);
      assert.deepEqual(resolver.replicas, [`http://${HOST}:${fakes[0].port} (127.0.0.2)`]);
      // Both gone: the old address and the new one were each tried once (the one used before may fail on its closing connection).
      await fakes[1].stop();
      resolver.addresses = ["127.0.0.1"];
      await clientRejects(client.apply(inputs()), "UNAVAILABLE", new RegExp(`no tesseract-core runtime answered POST /apply \\(http://${HOST}:${fakes[0].port} \\(127\\.0\\.0\\.2\\): (ECONNREFUSED|UND_ERR_SOCKET|ECONNRESET)(: [^;]*)?; http://${HOST}:${fakes[0].port} \\(127\\.0\\.0\\.1\\): ECONNREFUSED\\)`));
    } finally {
      await stop();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("a name that does not resolve at the start: the error names the URL and why", async () => {
    const resolver = new Resolver([]);
    await assert.rejects(loadTesseractCore("http://nowhere.test:8000", { lookup: resolver.lookup }), /no tesseract-core runtime address could be resolved \(http:\/\/nowhere\.test:8000: ENOTFOUND\)/);
  });

  it("IP addresses are replicas as they are, never resolved; round-robin puts replicas that could not connect last", async () => {
    const resolver = new Resolver(["127.0.0.5", "127.0.0.6"]);
    const replicas = await RuntimeReplicas.start(["http://127.0.0.9:1", `http://${HOST}:2/prefix`, "http://[::1]:3"], { lookup: resolver.lookup });
    try {
      assert.equal(resolver.lookups, 1);
      const names = ["http://127.0.0.9:1", `http://${HOST}:2/prefix (127.0.0.5)`, `http://${HOST}:2/prefix (127.0.0.6)`, "http://[::1]:3"];
      assert.deepEqual(
        replicas.all.map((r) => r.name),
        names,
      );
      assert.deepEqual(
        [0, 1, 2, 3, 4].map(() => replicas.order()[0].name),
        [...names, names[0]],
      );
      replicas.failed(replicas.all[1], Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
      replicas.failed(replicas.all[2], Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }));
      // The next turn starts at the second replica, which refused: it goes last; the third (reset) keeps its place.
      assert.deepEqual(
        replicas.order().map((r) => r.name),
        [names[2], names[3], names[0], names[1]],
        "a refused connection puts its replica last; a reset does not",
      );
      assert.equal(await replicas.refresh(), false, "the same answer changes nothing");
    } finally {
      replicas.close();
    }
  });

  it("health rounds over more than ten replicas: no listener-leak warning", async () => {
    const fakes = await fakesOnOnePort(12);
    const resolver = new Resolver(fakes.map((f) => f.host));
    const warnings: string[] = [];
    const listen = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", listen);
    const runtime = await loadTesseractCore(`http://${HOST}:${fakes[0].port}`, { lookup: resolver.lookup, onReplicasChange: resolver.onChange, healthIntervalMs: 5 });
    try {
      // Three rounds of GET /health on every replica (each round's requests share one signal).
      await Promise.all(fakes.map(async (f) => {
        while (f.healthCalls < 3) await once(f.events, "health");
      }));
      await new Promise(setImmediate); // process warnings are emitted on a later tick
      assert.deepEqual(warnings, []);
    } finally {
      process.off("warning", listen);
      await runtime.close();
      await Promise.all(fakes.map((f) => f.close()));
    }
  });

  it("https: each address is verified against the host name (the certificate names localhost, not 127.0.0.2)", async () => {
    const run = promisify(execFile);
    const script = path.join(__dirname, "fixtures/tesseract-core/https-replicas.js");
    const ca = path.join(__dirname, "../../test/fixtures/tls/ca.crt");
    const { stdout } = await run(process.execPath, [script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: ca } });
    const { port, answers, hosts } = JSON.parse(stdout) as { port: number; answers: { name: string; answer: unknown }[]; hosts: string[] };
    assert.deepEqual(answers, [
      { name: `https://localhost:${port} (127.0.0.1)`, answer: 200 },
      { name: `https://localhost:${port} (127.0.0.2)`, answer: 200 },
    ]);
    assert.deepEqual(hosts, [`localhost:${port}`, `localhost:${port}`]);
  });
});
