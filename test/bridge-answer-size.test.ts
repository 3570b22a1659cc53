/**
 * A tesseract-core runtime's answers are read up to a bound (runtime-replicas.ts): an OpenAPI
 * document or an apply answer longer than it is refused unread, naming the runtime — a runtime
 * that streamed gigabytes took the server to 6 GB and a fatal error. A plain node:http runtime that
 * serves Mesh Stats' document and misbehaves on purpose. Also: how a start that got no answer at all
 * says why.
 */
import { strict as assert } from "node:assert";
import { once } from "node:events";
import * as http from "node:http";
import * as zlib from "node:zlib";
import type { AddressInfo } from "node:net";
import { Code } from "../index";
import { decodeContent } from "../server/bridge/content-coding";
import { failureReason, MAX_ANSWER_BYTES, MAX_OPENAPI_BYTES, RuntimeReplicas } from "../server/bridge/runtime-replicas";
import { loadTesseractCore } from "../server/bridge/tesseract-core";
import { MESH_STATS_OPENAPI } from "./fixtures/tesseract-core/mesh-stats";
import { clientRejects, freePort, rejects } from "./helpers";
import { Algorithm } from "../client";
import { startServer } from "../index";
import { silentLogger } from "../server/log";
import { meshStatsInputs, reflectedClient } from "./fixtures/tesseract-core/bridge-clients";
import { startFakeTesseractCore, type FakeArray } from "./fixtures/tesseract-core/fake-tesseract-core";
import { meshStats } from "./fixtures/tesseract-core/mesh-stats";

/** A runtime whose /openapi.json and /apply answers are `openapi` and `apply`. */
async function runtimeAt(openapi: (res: http.ServerResponse) => void, apply: (res: http.ServerResponse, req: http.IncomingMessage) => void) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => (req.url === "/openapi.json" ? openapi(res) : req.url === "/apply" ? apply(res, req) : res.end("{}")));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, close: () => (server.closeAllConnections(), new Promise((resolve) => server.close(resolve))) };
}

const document = (res: http.ServerResponse) => res.end(JSON.stringify(MESH_STATS_OPENAPI));

/** `total` bytes of spaces, chunked, 1 MiB at a time (until the reader gives up). */
function streamed(total: number) {
  return (res: http.ServerResponse) => {
    const chunk = Buffer.alloc(1 << 20, 0x20);
    let sent = 0;
    const more = () => {
      while (sent < total && !res.destroyed) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", more);
      }
      res.end();
    };
    more();
  };
}

describe("tesseract-core bridge: answers read up to a bound", function () {
  this.timeout(30000);

  it("an OpenAPI document over 16 MiB: refused at start, naming the runtime and the bound", async () => {
    const runtime = await runtimeAt(streamed(MAX_OPENAPI_BYTES + (2 << 20)), document);
    try {
      await assert.rejects(loadTesseractCore(runtime.url), new RegExp(`^Error: GET /openapi\\.json on ${runtime.url.replace(/\./g, "\\.")} answered more than ${MAX_OPENAPI_BYTES} bytes`));
    } finally {
      await runtime.close();
    }
  });

  it("an apply answer declaring more than 256 MiB, or streaming past it: UNKNOWN naming the runtime and the bound", async () => {
    let mode = "declared";
    const runtime = await runtimeAt(document, (res) => {
      if (mode === "declared") {
        res.writeHead(200, { "content-type": "application/json", "content-length": String(MAX_ANSWER_BYTES + 1) });
        res.write("{");
      } else streamed(MAX_ANSWER_BYTES + (4 << 20))(res);
    });
    const bridged = await loadTesseractCore(runtime.url);
    try {
      const bound = new RegExp(`^POST /apply on ${runtime.url.replace(/\./g, "\\.")} answered more than ${MAX_ANSWER_BYTES} bytes`);
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, bound);
      mode = "streamed";
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, bound);
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });

  it("a /health answer's body is not kept: a runtime answering 128 MiB there is read no further than a little of it, and is up (each round read it whole, outside the answers' budget: four such replicas took the server past 2 GB)", async () => {
    let sent = 0;
    let closed!: Promise<unknown>;
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url === "/openapi.json") return document(res);
      closed = once(res, "close");
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(1 << 20, 0x20);
      const more = () => {
        while (sent < 128 << 20 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const replicas = await RuntimeReplicas.start([`http://127.0.0.1:${(server.address() as AddressInfo).port}`]);
    try {
      assert.equal(await replicas.answersHealth(new AbortController().signal), true);
      await closed;
      // What the sockets' buffers took before the bridge closed it (4 MiB here), not the whole answer.
      assert.ok(sent < 32 << 20, `${sent} bytes sent`);
    } finally {
      replicas.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it("--runtime-wait-ms: a start waits for a runtime still starting (it stopped at once, and a container's bridge started before its runtime crash-looped), and says how long it waited when none came", async function () {
    this.timeout(20_000);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    let runtime: Awaited<ReturnType<typeof startFakeTesseractCore>> | undefined;
    const waiting: string[] = [];
    // The runtime starts once the start has said it waits for one.
    const logger = { ...silentLogger, warn: (fields: { why: string }, message: string) => void (waiting.push(`${message}: ${fields.why}`), (runtime ??= undefined), startFakeTesseractCore(meshStats(), { port }).then((r) => (runtime = r))) } as unknown as typeof silentLogger;
    try {
      const bridged = await loadTesseractCore(url, { runtimeWaitMs: 15_000, logger });
      assert.equal(waiting.length, 1);
      assert.match(waiting[0], /^waiting for a tesseract-core runtime to answer \(--runtime-wait-ms\): no tesseract-core runtime answered GET \/openapi\.json \(http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED; each is given up to 10 s to answer\)$/);
      assert.equal(bridged.definition.name, "Mesh Stats");
      await bridged.close();
    } finally {
      await runtime?.close();
    }
    await assert.rejects(loadTesseractCore(url, { runtimeWaitMs: 300 }), /^Error: no tesseract-core runtime answered GET \/openapi\.json \(http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED; each is given up to 10 s to answer\), after waiting 300 ms \(--runtime-wait-ms\)$/);
  });

  it("a runtime that does not answer: the start names it and why, a timeout in words (its abort's code was 23)", async () => {
    const runtime = await runtimeAt(document, document);
    await runtime.close();
    await assert.rejects(loadTesseractCore(runtime.url), new RegExp(`^Error: no tesseract-core runtime answered GET /openapi\\.json \\(${runtime.url.replace(/\./g, "\\.")}: ECONNREFUSED; each is given up to 10 s to answer\\)$`));
    assert.equal(failureReason(new DOMException("The operation was aborted due to timeout", "TimeoutError")), "timed out");
    assert.equal(failureReason(Object.assign(new Error("connect"), { cause: { code: "ECONNRESET" } })), "ECONNRESET: the connection closed before a whole answer came (the runtime may crash on these inputs)");
    assert.equal(failureReason(Object.assign(new Error("aborted"), { code: 20 })), "aborted");
  });

  it("a URL with an endpoint's path (…/apply, …/openapi.json): the start names the runtime by its URL without the path (it wrote 'URL (address)/openapi.json answered HTTP 404')", async () => {
    const fake = await startFakeTesseractCore(meshStats());
    try {
      for (const endpoint of ["/apply", "/openapi.json"]) {
        await assert.rejects(loadTesseractCore(fake.url + endpoint), {
          message: `GET /openapi.json on ${fake.url}${endpoint} answered HTTP 404; expected a tesseract-core runtime's OpenAPI document: the URL's path, ${endpoint}, comes before every endpoint; a runtime is named by its URL without a path, ${fake.url}`,
        });
      }
      // The runtime's own URL starts.
      const runtime = await loadTesseractCore(fake.url + "/");
      await runtime.close();
    } finally {
      await fake.close();
    }
  });

  it("a URL of a gRPC port, or https:// of a plaintext one: the start says what is wrong (it said HPE_INVALID_CONSTANT, ERR_SSL_WRONG_VERSION_NUMBER)", async () => {
    const grpcServer = await startServer({ tesseract: "vectoradd", port: 0, workers: 0, logger: silentLogger });
    try {
      const at = (scheme: string) => `${scheme}://127.0.0.1:${grpcServer.port}`;
      // Not waited for under --runtime-wait-ms: a port that answers no HTTP/1.1 will not start to.
      await assert.rejects(loadTesseractCore(at("http"), { runtimeWaitMs: 60_000 }), { message: `no tesseract-core runtime answered GET /openapi.json (${at("http")}: HPE_INVALID_CONSTANT: it does not answer HTTP/1.1 (a gRPC port, such as a tesseract-grpc server's, answers HTTP/2 only); each is given up to 10 s to answer)` });
      await assert.rejects(loadTesseractCore(at("https")), { message: `no tesseract-core runtime answered GET /openapi.json (${at("https")}: ERR_SSL_WRONG_VERSION_NUMBER: it does not answer TLS: use http://; each is given up to 10 s to answer)` });
    } finally {
      await grpcServer.close(0);
    }
    assert.equal(failureReason(Object.assign(new Error("fetch failed"), { cause: { code: "SELF_SIGNED_CERT_IN_CHAIN" } })), "SELF_SIGNED_CERT_IN_CHAIN: its certificate is not trusted: NODE_EXTRA_CA_CERTS=<file> adds the CA that signed it");
  });

  it("answers nested deeper than 100: refused naming the runtime (the readers recursing over them overflowed the stack)", async () => {
    const deep = (n: number) => `${"[".repeat(n)}1${"]".repeat(n)}`;
    const nestedDocument = await runtimeAt((res) => res.end(`{"openapi": "3.1.0", "x": ${deep(100_000)}}`), document);
    try {
      await assert.rejects(loadTesseractCore(nestedDocument.url), new RegExp(`^Error: GET /openapi\\.json on ${nestedDocument.url.replace(/\./g, "\\.")} answered JSON nested more than 100 deep`));
    } finally {
      await nestedDocument.close();
    }
    const runtime = await runtimeAt(document, (res) => res.end(`{"statistics": {"barycenter": ${deep(100_000)}}}`));
    const bridged = await loadTesseractCore(runtime.url);
    try {
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, new RegExp(`^apply on ${runtime.url.replace(/\./g, "\\.")} answered outputs that do not match \\S+: JSON nested more than 100 deep$`));
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });

  it("an answer with Python's NaN, Infinity and -Infinity (json.dumps writes them; tesseract-core's client reads them) is read as JSON, and a non-finite element of a json-encoded array is named (it was UNKNOWN \"not valid JSON\", quoting the bytes)", async () => {
    const runtime = await runtimeAt(document, (res) => res.end('{"barycenter": {"shape": [3], "dtype": "float64", "data": {"buffer": [1, NaN, -Infinity], "encoding": "json"}}, "count": 4}'));
    const server = await startServer({ tesseract: runtime.url, port: 0, logger: silentLogger, evalCacheBytes: 0 });
    const { client } = await reflectedClient(server.address);
    try {
      const refused = new RegExp(`^apply on ${runtime.url.replace(/\./g, "\\.")} answered outputs that do not match \\S+: outputs\\.barycenter\\.data\\.buffer element 1 is NaN, expected a finite number$`);
      await clientRejects(client.apply(meshStatsInputs()), "UNKNOWN", refused);
    } finally {
      client.close();
      await server.close(0);
      await runtime.close();
    }
  });

  it("a runtime's error text reaches callers with its control characters escaped (an ESC sequence drove the CLI's terminal)", async () => {
    const runtime = await runtimeAt(document, (res) => {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(Buffer.from([0x6f, 0x6f, 0x70, 0x73, 0x00, 0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x0a, 0x6e]));
    });
    const bridged = await loadTesseractCore(runtime.url);
    try {
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, /failed with HTTP 500: oops\\u0000\\u001b\[31m\nn$/);
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });

  it("an answer over the message limit is RESOURCE_EXHAUSTED naming it, its size, the limit and what to do (grpc-js's own \"Sent message larger than max\" named nothing)", async () => {
    // barycenter answered as `size` copies of the first point's x: an Apply of 2.4 MB, a Jacobian of 0.8 MB with as many error estimates.
    let size = 300_000;
    const base = meshStats();
    const fake = await startFakeTesseractCore({
      ...base,
      apply: (decoded) => {
        const x = ((decoded.mesh as { points: FakeArray }).points.values[0]);
        return { ...base.apply(decoded), barycenter: { shape: [size], dtype: "float64", values: new Array<number>(size).fill(x) } };
      },
    });
    // No evaluation cache: the runtime's answers change size between the two calls, and the Jacobian's
    // f(x) cached by the Apply, 300 000 values beside evaluations of 8 000, is refused as the fault it is.
    const server = await startServer({ tesseract: fake.url, port: 0, logger: silentLogger, maxMessageBytes: 1 << 20, evalCacheBytes: 0 });
    const { client } = await reflectedClient(server.address);
    try {
      await clientRejects(client.apply(meshStatsInputs()), "RESOURCE_EXHAUSTED", /^the Apply answer is 24000\d\d bytes, over the 1048576-byte message limit \(--max-message-bytes\); raise it on the server and on the client \(the SDK's maxMessageBytes, the CLI's --max-message-bytes\)$/);
      size = 8000;
      const richardson = { algorithm: Algorithm.ALGORITHM_RICHARDSON };
      await clientRejects(
        client.jacobian({ inputs: meshStatsInputs(), inputPaths: ["mesh.points"], outputPaths: ["barycenter"], options: richardson }),
        "RESOURCE_EXHAUSTED",
        /^the Jacobian answer is 15\d{5} bytes, over the 1048576-byte message limit \(--max-message-bytes\); stream it row by row with the gRPC JacobianRows \(or the CLI's jacobian --stream or --out\)$/,
      );
    } finally {
      client.close();
      await server.close(0);
      await fake.close();
    }
  });

  it("a compressed answer (Content-Encoding gzip, deflate, br) is decoded; another encoding is UNKNOWN naming it; requests ask for none (it was \"not UTF-8\")", async () => {
    const outputs = JSON.stringify({ barycenter: { object_type: "array", shape: [3], dtype: "float64", data: { buffer: [1, 2, 3], encoding: "json" } }, count: 4 });
    const encoders: Record<string, (b: Buffer) => Buffer> = { gzip: zlib.gzipSync, deflate: zlib.deflateSync, br: zlib.brotliCompressSync, zstd: (b) => b };
    let encoding = "gzip";
    const accepted: (string | undefined)[] = [];
    const runtime = await runtimeAt(document, (res, req) => {
      accepted.push(req.headers["accept-encoding"]);
      res.writeHead(200, { "content-type": "application/json", "content-encoding": encoding });
      res.end(encoders[encoding](Buffer.from(outputs)));
    });
    const bridged = await loadTesseractCore(runtime.url);
    try {
      for (encoding of ["gzip", "deflate", "br"]) assert.deepEqual(Array.from(((await bridged.apply(meshStatsInputs())) as { barycenter: { data: Float64Array } }).barycenter.data), [1, 2, 3], encoding);
      encoding = "zstd";
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, new RegExp(`^POST /apply on ${runtime.url.replace(/\./g, "\\.")} answered with Content-Encoding "zstd", which the bridge does not decode \\(it asks for none: Accept-Encoding: identity\\)$`));
      assert.deepEqual(new Set(accepted), new Set(["identity"]));
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });

  it("a compressed answer is decoded up to the bound (a small gzip of zeros is a big answer), and one that does not decode says so", async () => {
    await assert.rejects(decodeContent(zlib.gzipSync(Buffer.alloc(1000)), "gzip", 100), /^Error: answered more than 100 bytes once decoded \(Content-Encoding gzip\), the most this server reads of a runtime's answer$/);
    await assert.rejects(decodeContent(Buffer.from("{}"), "br", 100), /^Error: answered with Content-Encoding br, but its bytes do not decode: /);
    assert.equal((await decodeContent(zlib.brotliCompressSync(zlib.gzipSync(Buffer.from("{}"))), "gzip, br", 100)).toString(), "{}");
    assert.equal((await decodeContent(Buffer.from("{}"), "identity", 100)).toString(), "{}");
    // Raw deflate (no zlib header) as some servers send it.
    assert.equal((await decodeContent(zlib.deflateRawSync(Buffer.from("{}")), "deflate", 100)).toString(), "{}");
  });

  it("a compressed answer's decoded bytes are taken from the answers' shared budget as they come (several decoded outside it, to the bound each)", async () => {
    const taken: number[] = [];
    const decoded = await decodeContent(zlib.gzipSync(Buffer.alloc(1 << 20)), "gzip", 4 << 20, async (n) => void taken.push(n));
    assert.equal(decoded.length, 1 << 20);
    assert.equal(taken.reduce((a, b) => a + b, 0), 1 << 20);
    assert.ok(taken.length > 1, `taken in ${taken.length} piece(s)`);
    // A reader whose budget wait is given up on stops decoding.
    const abort = new Error("the call was cancelled");
    await assert.rejects(decodeContent(zlib.gzipSync(Buffer.alloc(1 << 20)), "gzip", 4 << 20, async () => Promise.reject(abort)), (e) => e === abort);
  });

  it("an answer that is not HTTP/1.1 (a chunk size that is no number, a broken header line, a head over 16 KiB, Content-Length beside chunked, a status below 100) is UNKNOWN naming the runtime and the parser's reason, sent once (it was UNAVAILABLE: \"it does not answer HTTP/1.1 (a gRPC port …)\", which callers retry)", async () => {
    let answer = "";
    let posts = 0;
    const runtime = await runtimeAt(document, (res) => {
      posts++;
      res.socket!.write(answer);
    });
    const bridged = await loadTesseractCore(runtime.url);
    const url = runtime.url.replace(/\./g, "\\.");
    try {
      for (const [bytes, reason] of [
        ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nZZ\r\n", "HPE_INVALID_CHUNK_SIZE: Response does not match the HTTP/1.1 protocol \\(Invalid character in chunk size\\)"],
        ["HTTP/1.1 200 OK\r\ncontent-type application/json\r\n\r\n", "HPE_INVALID_HEADER_TOKEN: Response does not match the HTTP/1.1 protocol \\(Invalid header token\\)"],
        [`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(20_000)}\r\ncontent-length: 2\r\n\r\n{}`, "UND_ERR_HEADERS_OVERFLOW: Headers Overflow Error"],
        ["HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", "UND_ERR_RES_CONTENT_LENGTH_MISMATCH: Response body length does not match content-length header"],
        ["HTTP/1.1 099 Early\r\ncontent-length: 2\r\n\r\n{}", "ERR_ASSERTION: The expression evaluated to a falsy value: assert\\(statusCode >= 100\\)"],
      ]) {
        answer = bytes;
        posts = 0;
        await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, new RegExp(`^POST /apply on ${url} answered malformed HTTP \\(${reason}\\)$`));
        assert.equal(posts, 1);
      }
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });

  it("an answer whose body stops coming after its head is UNKNOWN once no byte came for the stall bound, and its slot is free (without a deadline the call and its --concurrency slot waited for ever); a body that comes slowly but keeps coming is read", async () => {
    const outputs = JSON.stringify({ barycenter: { object_type: "array", shape: [3], dtype: "float64", data: { buffer: [1, 2, 3], encoding: "json" } }, count: 4 });
    let stops = true;
    const runtime = await runtimeAt(document, (res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": outputs.length });
      if (stops) return void res.write(outputs.slice(0, 10));
      // Six pieces 100 ms apart: longer in all than the bound, never that long without a byte.
      const pieces = outputs.match(/[^]{1,20}/g)!;
      const next = () => (pieces.length === 1 ? res.end(pieces.shift()) : (res.write(pieces.shift()), setTimeout(next, 100)));
      next();
    });
    const bridged = await loadTesseractCore(runtime.url, { answerStallMs: 300, connections: 1 });
    try {
      const url = runtime.url.replace(/\./g, "\\.");
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, new RegExp(`^POST /apply on ${url} answered its head, then no byte of its body for 300 ms: given up$`));
      stops = false;
      assert.deepEqual(Array.from(((await bridged.apply(meshStatsInputs())) as { barycenter: { data: Float64Array } }).barycenter.data), [1, 2, 3]);
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });

  it("interim answers: 102 and 103 before the answer are passed over; a 100 Continue or 101 the bridge did not ask for is UNKNOWN saying so, sent once (it was UNAVAILABLE: UND_ERR_SOCKET)", async () => {
    const outputs = JSON.stringify({ barycenter: { object_type: "array", shape: [3], dtype: "float64", data: { buffer: [1, 2, 3], encoding: "json" } }, count: 4 });
    let interim = "103";
    let posts = 0;
    const runtime = await runtimeAt(document, (res) => {
      posts++;
      if (interim === "101") return void res.socket!.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
      if (interim === "100") res.writeContinue();
      else if (interim === "102") res.writeProcessing();
      else res.writeEarlyHints({ link: "</style.css>; rel=preload" });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(outputs);
    });
    const bridged = await loadTesseractCore(runtime.url);
    try {
      for (interim of ["102", "103"]) assert.deepEqual(Array.from(((await bridged.apply(meshStatsInputs())) as { barycenter: { data: Float64Array } }).barycenter.data), [1, 2, 3], interim);
      interim = "100";
      posts = 0;
      const url = runtime.url.replace(/\./g, "\\.");
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, new RegExp(`^POST /apply on ${url} answered "100 Continue", which the bridge did not ask for \\(it sends no Expect: 100-continue\\) and its HTTP client cannot read past, or other bytes that answer no request$`));
      assert.equal(posts, 1);
      interim = "101";
      await rejects(bridged.apply(meshStatsInputs()), Code.UNKNOWN, new RegExp(`^POST /apply on ${url} answered "101 Switching Protocols" to a request that asked for no upgrade$`));
    } finally {
      await bridged.close();
      await runtime.close();
    }
  });
});
