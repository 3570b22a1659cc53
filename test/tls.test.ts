/**
 * TLS and mutual TLS: the server (startServer's `tls`), the SDK (`tls` option, `tlsCredentials`) and the
 * CLI (`serve --tls-*`, client commands' `--tls*`). Certificates: test/fixtures/tls (generate.sh).
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { TesseractClient, tlsCredentials, type ClientTls } from "../client";
import { Inputs, Outputs } from "../generated/tesseract/examples/meshstats/v1/meshstats";
import { startServer, type RunningServer, type ServeOptions } from "../index";
import { silentLogger } from "../server/log";
import { CLI, clientRejects, flat, LogLines, meshInputs, serveProcess, type ServeProcess } from "./helpers";

const FIXTURES = path.join(__dirname, "../../test/fixtures/tls");
const file = (name: string) => path.join(FIXTURES, name);
const pem = (name: string) => fs.readFileSync(file(name));

const SERVER = { cert: pem("server.crt"), key: pem("server.key") };
const CA = pem("ca.crt");
const CLIENT = { cert: pem("client.crt"), key: pem("client.key") };
const OTHER_CLIENT = { cert: pem("other-client.crt"), key: pem("other-client.key") };

const TYPES = { inputs: Inputs, outputs: Outputs };

async function serve(options: Partial<ServeOptions>): Promise<RunningServer> {
  return startServer({ tesseract: "meshstats", port: 0, workers: 0, logger: silentLogger, ...options });
}

/** A server with `tls`, and its "serving" log line. */
async function serveLogged(tls: ServeOptions["tls"]): Promise<{ server: RunningServer; serving: Record<string, unknown> }> {
  const logs = new LogLines();
  const serving = logs.next((line) => line.msg === "serving");
  const server = await serve({ tls, logger: logs.logger });
  return { server, serving: await serving };
}

/** meshstats' barycenter and first point, as the SDK returns them. */
async function assertApplyWorks(client: TesseractClient<Inputs, Outputs>): Promise<void> {
  const inputs = meshInputs(3);
  const { statistics } = await client.apply(inputs);
  const points = flat(inputs.mesh.points);
  assert.deepEqual(flat(statistics!.first_point_coordinates), points.slice(0, 3));
  const barycenter = [0, 1, 2].map((c) => (points[c] + points[3 + c] + points[6 + c]) / 3);
  flat(statistics!.barycenter).forEach((v, c) => assert.ok(Math.abs(v - barycenter[c]) < 1e-12, `barycenter[${c}]`));
}

describe("TLS", () => {
  const clients: TesseractClient<Inputs, Outputs>[] = [];
  /**
   * A client closed after each test. With TLS, the server name is "localhost": grpc-js would send the IP
   * address of `address`, and Node warn about it (DEP0123) in the test output; the CLI tests use the IP.
   */
  const client = (address: string, options: { tls?: ClientTls; credentials?: grpc.ChannelCredentials; token?: string } = {}) => {
    const secure = options.tls || options.credentials;
    const c = new TesseractClient<Inputs, Outputs>(address, TYPES, { ...options, channelOptions: secure ? { "grpc.ssl_target_name_override": "localhost" } : {} });
    clients.push(c);
    return c;
  };
  afterEach(() => clients.splice(0).forEach((c) => c.close()));

  describe("server with a certificate", () => {
    let server: RunningServer;
    let serving: Record<string, unknown>;
    before(async () => ({ server, serving } = await serveLogged(SERVER)));
    after(() => server.close(0));

    it("logs that TLS is on", () => {
      assert.equal(serving.tls, "on");
    });

    it("serves a client trusting its CA: apply, describe and health", async () => {
      const c = client(server.address, { tls: { ca: CA } });
      await assertApplyWorks(c);
      assert.equal((await c.describe()).name, "meshstats");
      assert.equal(await c.health(), "SERVING");
    });

    it("answers by name too (localhost is in the certificate)", async () => {
      const c = client(`localhost:${server.port}`, { credentials: tlsCredentials({ ca: CA }) });
      assert.equal(await c.health(), "SERVING");
    });

    // grpc-js says only "Failed to connect" (or, for a client refusing the certificate, passes Node's
    // TLS error on, depending on timing): the message says what to check (it said nothing more).
    const closed = "the connection was closed before gRPC began: a TLS server needs the client's `tls` option, whose `ca` must trust the server's certificate";
    const untrusted = "the client does not trust the server's certificate: give the client's `tls.ca` the CA that signed it";
    const hint = (...texts: string[]) => new RegExp(`— (${texts.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`);

    it("a plaintext client fails: UNAVAILABLE, saying a TLS server needs the tls option", async () => {
      const c = client(server.address);
      assert.match((await clientRejects(c.describe(), "UNAVAILABLE")).message, hint(closed));
      await clientRejects(c.health(), "UNAVAILABLE");
    });

    it("a client trusting another CA (or only the system's roots) fails: UNAVAILABLE, saying its ca must trust the server's certificate", async () => {
      assert.match((await clientRejects(client(server.address, { tls: { ca: pem("other-ca.crt") } }).describe(), "UNAVAILABLE")).message, hint(closed, untrusted));
      assert.match((await clientRejects(client(server.address, { tls: {} }).describe(), "UNAVAILABLE")).message, hint(closed, untrusted));
    });
  });

  it("closing ends connections whose TLS handshake never finished (nothing sent, or half a ClientHello), and the sockets of a plaintext port that never spoke HTTP/2 (a TLS one stayed open for Node's 2-minute handshake timeout)", async () => {
    const net = await import("node:net");
    for (const tls of [SERVER, undefined]) {
      const server = await serve({ tls });
      const sockets = [Buffer.alloc(0), Buffer.from([0x16, 0x03, 0x01]), Buffer.from("PRI * HTTP/2.0\r\n")].map((bytes) => {
        const socket = net.connect(server.port, "127.0.0.1", () => socket.write(bytes));
        socket.on("error", () => {}).resume(); // read, so that the server's FIN is seen
        return socket;
      });
      const closed = sockets.map((socket) => new Promise((resolve) => socket.on("close", resolve)));
      await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once("connect", resolve))));
      // The server has the connections: its health answers after them, on a connection of its own.
      assert.equal(await client(tls ? `localhost:${server.port}` : server.address, tls ? { credentials: tlsCredentials({ ca: CA }) } : {}).health(), "SERVING");
      await server.close(0);
      await Promise.all(closed);
    }
  });

  it("a running server closes a connection whose TLS handshake has not finished within silentConnectionMs (nothing sent, or half a ClientHello), gRPC and REST ports, as a silent plaintext one; finished handshakes stay", async () => {
    const net = await import("node:net");
    const server = await serve({ tls: SERVER, silentConnectionMs: 300, httpPort: 0 });
    try {
      const ports = [server.port, server.httpPort!];
      const sockets = ports.flatMap((port) => [Buffer.alloc(0), Buffer.from([0x16, 0x03, 0x01])].map((bytes) => ({ port, bytes }))).map(({ port, bytes }) => {
        const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes));
        socket.on("error", () => {}).resume(); // read, so that the server's FIN is seen
        return socket;
      });
      // They stayed for Node's 2 minutes: the test's timeout.
      await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.on("close", resolve))));
      // A connection whose handshake finished (and that speaks HTTP/2) is not closed: watched for three times the silence.
      const http2 = await import("node:http2");
      const session = http2.connect(`https://localhost:${server.port}`, { ca: CA });
      try {
        let closed = false;
        session.on("close", () => (closed = true)).on("error", () => {});
        await new Promise((resolve) => session.once("connect", resolve));
        await new Promise<void>((resolve) => setTimeout(resolve, 900).unref());
        assert.equal(closed, false, "a connection whose handshake finished was closed");
      } finally {
        session.destroy();
      }
    } finally {
      await server.close(0);
    }
  });

  describe("mutual TLS", () => {
    let server: RunningServer;
    let serving: Record<string, unknown>;
    before(async () => ({ server, serving } = await serveLogged({ ...SERVER, clientCa: CA })));
    after(() => server.close(0));

    it("logs that TLS is mutual", () => {
      assert.equal(serving.tls, "mutual");
    });

    it("serves a client with a certificate signed by the client CA", async () => {
      const c = client(server.address, { tls: { ca: CA, ...CLIENT } });
      await assertApplyWorks(c);
      assert.equal(await c.health(), "SERVING");
    });

    // grpc-js passes OpenSSL's alert on, or says "Failed to connect", depending on timing: the message then names the client
    // certificate. At times it says only "read ECONNRESET", a reset that names nothing.
    const certificate = /— (the server requires a client certificate|the server refused the client's certificate|the connection was closed before gRPC began: .*under mutual TLS, with a `cert` and `key` the server trusts)|Last error: read ECONNRESET\b/;

    it("refuses a client without a certificate: UNAVAILABLE, saying the server wants one", async () => {
      const c = client(server.address, { tls: { ca: CA } });
      assert.match((await clientRejects(c.describe(), "UNAVAILABLE")).message, certificate);
      await clientRejects(c.health(), "UNAVAILABLE");
    });

    it("refuses a client certificate from an unrelated CA: UNAVAILABLE, saying which certificate the server trusts", async () => {
      assert.match((await clientRejects(client(server.address, { tls: { ca: CA, ...OTHER_CLIENT } }).describe(), "UNAVAILABLE")).message, certificate);
    });

    it("refuses a plaintext client: UNAVAILABLE", async () => {
      await clientRejects(client(server.address).describe(), "UNAVAILABLE");
    });
  });

  describe("bearer tokens over TLS", () => {
    let server: RunningServer;
    before(async () => {
      server = await serve({ tls: SERVER, tokens: ["s3cret"] });
    });
    after(() => server.close(0));

    it("UNAUTHENTICATED without the token, served with it; health needs none", async () => {
      await clientRejects(client(server.address, { tls: { ca: CA } }).describe(), "UNAUTHENTICATED");
      await clientRejects(client(server.address, { tls: { ca: CA }, token: "wrong" }).describe(), "UNAUTHENTICATED");
      const c = client(server.address, { tls: { ca: CA }, token: "s3cret" });
      await assertApplyWorks(c);
      assert.equal(await client(server.address, { tls: { ca: CA } }).health(), "SERVING");
    });
  });

  describe("bad certificates and keys", () => {
    it("startServer fails naming the option", async () => {
      const junk = Buffer.from("not a certificate\n");
      await assert.rejects(serve({ tls: { cert: junk, key: SERVER.key } }), /^Error: tls\.cert: no PEM certificate/);
      await assert.rejects(serve({ tls: { cert: SERVER.cert, key: junk } }), /^Error: tls\.key: not a valid PEM private key/);
      await assert.rejects(serve({ tls: { cert: SERVER.cert, key: CLIENT.key } }), /^Error: tls\.key: the private key does not match the certificate of tls\.cert/);
      // grpc-js itself would take this one silently and refuse every client.
      await assert.rejects(serve({ tls: { ...SERVER, clientCa: junk } }), /^Error: tls\.clientCa: no PEM certificate/);
      const broken = Buffer.from(CA.toString().replace(/(BEGIN CERTIFICATE-----\n)..../, "$1AAAA"));
      await assert.rejects(serve({ tls: { ...SERVER, clientCa: broken } }), /^Error: tls\.clientCa: certificate 1 is not valid/);
    });

    it("the SDK fails naming the option", () => {
      assert.throws(() => tlsCredentials({ ca: Buffer.from("junk") }), /^Error: tls\.ca: no PEM certificate/);
      assert.throws(() => tlsCredentials({ ca: CA, cert: CLIENT.cert }), /^Error: tls\.key is missing/);
      assert.throws(() => tlsCredentials({ ca: CA, key: CLIENT.key }), /^Error: tls\.cert is missing/);
      assert.throws(() => tlsCredentials({ cert: CLIENT.cert, key: OTHER_CLIENT.key }), /^Error: tls\.key: the private key does not match/);
      assert.throws(() => new TesseractClient("127.0.0.1:1", TYPES, { tls: {}, credentials: grpc.credentials.createInsecure() }), /`credentials` or `tls`, not both/);
    });
  });
});

const run = promisify(execFile);

/** Runs a CLI command; resolves with exit code, stdout and stderr (never rejects). */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("TLS in the CLI", () => {
  let server: ServeProcess;
  let address: string;
  const mtls = ["--tls-ca", file("ca.crt"), "--tls-cert", file("client.crt"), "--tls-key", file("client.key")];

  before(async () => {
    server = await serveProcess(["meshstats", "--port", "0", "--workers", "0", "--tls-cert", file("server.crt"), "--tls-key", file("server.key"), "--tls-client-ca", file("ca.crt")]);
    address = server.address;
  });

  after(async () => {
    assert.equal(await server.stop(), 0, "serve exits 0 on SIGTERM");
  });

  it("describe, health and apply (with reflection) with the client certificate", async () => {
    const described = await cli(["describe", "--address", address, ...mtls]);
    assert.equal(described.code, 0, described.stderr);
    assert.equal(JSON.parse(described.stdout).name, "meshstats");
    const health = await cli(["health", "--address", address, ...mtls]);
    assert.deepEqual([health.code, health.stdout], [0, "SERVING\n"], health.stderr);
    const inputs = {
      mesh: {
        n_points: 3,
        n_cells: 1,
        points: [[1, 2, 3], [4, 5, 6], [7, 8, 10]],
        num_points_per_cell: [3],
        cell_connectivity: { object_type: "array", shape: [3], dtype: "int32", data: { buffer: [0, 1, 2], encoding: "json" } },
      },
    };
    const applied = await cli(["apply", JSON.stringify({ inputs }), "--address", address, ...mtls]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.deepEqual(JSON.parse(applied.stdout), { statistics: { first_point_coordinates: [1, 2, 3], barycenter: [4, 5, 19 / 3] } });
  });

  it("takes the client's TLS files from the environment too", async () => {
    const env = { TESSERACT_GRPC_TLS_CA: file("ca.crt"), TESSERACT_GRPC_CLIENT_TLS_CERT: file("client.crt"), TESSERACT_GRPC_CLIENT_TLS_KEY: file("client.key") };
    const health = await cli(["health", "--address", address], env);
    assert.deepEqual([health.code, health.stdout], [0, "SERVING\n"], health.stderr);
  });

  it("fails without the client certificate, or in plaintext", async () => {
    for (const flags of [["--tls-ca", file("ca.crt")], [], ["--tls-ca", file("ca.crt"), "--tls-cert", file("other-client.crt"), "--tls-key", file("other-client.key")]]) {
      const health = await cli(["health", "--address", address, ...flags]);
      assert.equal(health.code, 1, `${flags.join(" ")}: ${health.stdout}`);
      assert.match(health.stderr, /^tesseract-grpc health: UNAVAILABLE: /);
      // One line (OpenSSL's alert was printed, line break and all), naming the client certificate where
      // grpc-js passes the alert on; at times it says only "read ECONNRESET", a reset asked about as such.
      assert.equal(health.stderr.trimEnd().split("\n").length, 1, health.stderr);
      if (flags.length) assert.match(health.stderr.trimEnd(), /requires a client certificate|refused the client certificate|under mutual TLS, with --tls-cert and --tls-key|Last error: read ECONNRESET .* with TLS if and only if you asked for it\?$/);
    }
  });

  it("client flags: a certificate needs its key, files must exist", async () => {
    const noKey = await cli(["describe", "--address", address, "--tls-cert", file("client.crt")]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--tls-key is missing: a client certificate needs both --tls-cert and --tls-key/);
    const missing = path.join(FIXTURES, "missing.crt");
    const noFile = await cli(["describe", "--address", address, "--tls-ca", missing]);
    assert.equal(noFile.code, 1);
    assert.ok(noFile.stderr.includes(`--tls-ca ${missing}: cannot be read (ENOENT)`), noFile.stderr);
  });

  it("serve: a certificate without its key, a missing file or a bad PEM exits 1 with a clear error", async () => {
    const noKey = await cli(["serve", "meshstats", "--port", "0", "--tls-cert", file("server.crt")]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /--tls-key missing: TLS needs both --tls-cert and --tls-key/);
    const onlyCa = await cli(["serve", "meshstats", "--port", "0", "--tls-client-ca", file("ca.crt")]);
    assert.equal(onlyCa.code, 1);
    assert.match(onlyCa.stderr, /--tls-cert and --tls-key missing: TLS needs both --tls-cert and --tls-key \(--tls-client-ca adds mutual TLS/);
    const missing = path.join(FIXTURES, "missing.key");
    const noFile = await cli(["serve", "meshstats", "--port", "0", "--tls-cert", file("server.crt"), "--tls-key", missing]);
    assert.equal(noFile.code, 1);
    assert.ok(noFile.stderr.includes(`--tls-key ${missing}: cannot be read (ENOENT)`), noFile.stderr);
    const wrongKey = await cli(["serve", "meshstats", "--port", "0", "--tls-cert", file("server.crt"), "--tls-key", file("client.key")]);
    assert.equal(wrongKey.code, 1);
    assert.ok(wrongKey.stderr.includes(`--tls-key ${file("client.key")}: the private key does not match the certificate of --tls-cert ${file("server.crt")}`), wrongKey.stderr);
    const keyAsCert = await cli(["serve", "meshstats", "--port", "0", "--tls-cert", file("server.key"), "--tls-key", file("server.key")]);
    assert.equal(keyAsCert.code, 1);
    assert.ok(keyAsCert.stderr.includes(`--tls-cert ${file("server.key")}: no PEM certificate`), keyAsCert.stderr);
  });
});

describe("apply replicas behind TLS and a bearer token", () => {
  it("the engine calls them with --replica-tls-* credentials and --replica-token; the Jacobian equals inline", async () => {
    const replica = await serve({ tls: { ...SERVER, clientCa: CA }, tokens: ["replica-secret"] });
    const servers = [replica];
    const engine = (options: Partial<ServeOptions>) => serve({ replicas: `ipv4:${replica.address}`, ...options }).then((s) => (servers.push(s), s));
    const clients: TesseractClient<Inputs, Outputs>[] = [];
    const client = (server: RunningServer) => {
      const c = new TesseractClient<Inputs, Outputs>(server.address, TYPES);
      clients.push(c);
      return c;
    };
    try {
      const good = await engine({ replicaCredentials: tlsCredentials({ ca: CA, ...CLIENT }), replicaToken: "replica-secret" });
      const inline = await serve({});
      servers.push(inline);
      const request = { inputs: meshInputs(4), inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] };
      const viaReplica = await client(good).jacobian(request);
      const expected = await client(inline).jacobian(request);
      assert.equal(viaReplica.stats.apply_calls, 2 * 4, "meshstats' declared structure: 4 column groups");
      assert.deepEqual(viaReplica.jacobian["statistics.barycenter"]["mesh.points"].data, expected.jacobian["statistics.barycenter"]["mesh.points"].data);

      const noToken = await engine({ replicaCredentials: tlsCredentials({ ca: CA, ...CLIENT }) });
      await clientRejects(client(noToken).jacobian(request), "UNAUTHENTICATED", /^evaluation at .* failed: apply replica \(ipv4:127\.0\.0\.1:\d+\): a valid bearer token is required/);
      const plaintext = await engine({ replicaToken: "replica-secret" });
      await clientRejects(client(plaintext).jacobian(request), "UNAVAILABLE", /apply replica/);
    } finally {
      clients.forEach((c) => c.close());
      await Promise.all(servers.map((s) => s.close(0)));
    }
  });
});
