/**
 * Requests no well-behaved client sends, end to end on 127.0.0.1:0: request bytes written by hand
 * (grpc-js with an identity serializer), invalid UTF-8, map keys such as "__proto__", caller text
 * of a megabyte, enum values out of range, and a logger that fails while a call is answered. Each
 * gets one precise, short status and the server keeps serving.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import type * as protobuf from "protobufjs";
import * as protobufjs from "protobufjs";
import { jsonToTree } from "../client/json-form";
import { toTensors } from "../client/tree";
import { Code } from "../index";
import { startServer, type RunningServer } from "../index";
import { clip, MAX_DETAILS_BYTES, quote, shown } from "../common/errors";
import { shortInput } from "../server/http/errors";
import { recordFrom } from "../common/records";
import { loadTesseract } from "../index";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import { loadRoot } from "../server/schema/schema";
import { DataType } from "../common/tensor-codec";
import { f64, LogLines, maxAbsDiff } from "./helpers";
import { frame, RawGrpcSession, varintBytes } from "./raw-grpc";
import { MAX_PATTERN_NONZEROS } from "../server/fd/sparsity";

const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial");
const MESH_URL = "type.googleapis.com/tesseract.examples.meshstats.v1.Inputs";
const contract = loadRoot(["tesseract/v1/tesseract.proto", "tesseract/examples/meshstats/v1/meshstats.proto"]);
const type = (name: string) => contract.lookupType(name);
const fp64 = (values: number[], shape: number[]) => ({ datatype: DataType.DATA_TYPE_FP64, shape, data: Buffer.from(Float64Array.from(values).buffer) });
const int32 = (values: number[], shape: number[]) => ({ datatype: DataType.DATA_TYPE_INT32, shape, data: Buffer.from(Int32Array.from(values).buffer) });

/** A meshstats Inputs message (wire form) with two points, one cell and the given extras. */
function meshMessage(extra: { cell_data?: Record<string, unknown>; fd_algorithm?: number } = {}) {
  return {
    mesh: {
      n_points: 2,
      n_cells: 1,
      points: fp64([0, 0, 0, 1, 2, 3], [2, 3]),
      num_points_per_cell: fp64([2], [1]),
      cell_connectivity: int32([0, 1], [2]),
      cell_data: extra.cell_data ?? {},
    },
    fd_algorithm: extra.fd_algorithm ?? 0,
  };
}

const encode = (t: protobuf.Type, message: object) => Buffer.from(t.encode(t.fromObject(message)).finish());
const meshAny = (extra?: Parameters<typeof meshMessage>[0]) => ({ type_url: MESH_URL, value: encode(type("tesseract.examples.meshstats.v1.Inputs"), meshMessage(extra)) });

/** Replaces the first occurrence of `marker` (same length) in `bytes`: hand-made bytes inside valid framing. */
function patch(bytes: Buffer, marker: string, replacement: number[]): Buffer {
  const at = bytes.indexOf(Buffer.from(marker));
  assert.ok(at >= 0 && replacement.length === marker.length, "marker present, same length");
  const out = Buffer.from(bytes);
  out.set(replacement, at);
  return out;
}

/** ED A0 80: a UTF-16 surrogate encoded as UTF-8, not valid UTF-8. */
const SURROGATE = [0xed, 0xa0, 0x80];

interface Outcome {
  code: number;
  details: string;
  messages: number;
}

/** Sends request bytes as they are to `/tesseract.v1.Tesseract/<rpc>` (or a full path); resolves with the status. */
function send(client: grpc.Client, rpc: string, bytes: Buffer, streaming = false, metadata = new grpc.Metadata()): Promise<Outcome> {
  const method = rpc.startsWith("/") ? rpc : `/tesseract.v1.Tesseract/${rpc}`;
  const identity = (b: Buffer) => b;
  return new Promise((resolve) => {
    if (!streaming) {
      client.makeUnaryRequest(method, identity, identity, bytes, metadata, (err) => resolve({ code: err?.code ?? 0, details: err?.details ?? "", messages: err ? 0 : 1 }));
      return;
    }
    let messages = 0;
    const stream = client.makeServerStreamRequest(method, identity, identity, bytes, metadata);
    stream.on("data", () => messages++);
    stream.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, messages }));
    stream.on("error", () => {});
  });
}

function expectInvalid(o: Outcome, details: RegExp): void {
  assert.equal(o.code, Code.INVALID_ARGUMENT, `code ${o.code}: ${o.details}`);
  assert.match(o.details, details);
  assert.ok(Buffer.byteLength(o.details) <= MAX_DETAILS_BYTES, `message of ${Buffer.byteLength(o.details)} bytes`);
}

const applyRequest = (inputs: object) => encode(type("tesseract.v1.ApplyRequest"), { inputs });
const jacobianRequest = (inputs: object, jac_inputs = ["mesh.points"], jac_outputs = ["statistics.barycenter"]) =>
  encode(type("tesseract.v1.JacobianRequest"), { inputs, jac_inputs, jac_outputs });

describe("hostile requests", () => {
  let server: RunningServer;
  let client: grpc.Client;
  const logs = new LogLines();
  before(async () => {
    server = await startServer({ tesseract: "meshstats", port: 0, logger: logs.logger });
    client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await server.close();
  });

  /** The server still answers a valid call on the same channel. */
  async function stillServing(): Promise<void> {
    const o = await send(client, "Apply", applyRequest(meshAny()));
    assert.equal(o.code, 0, o.details);
  }

  it("a call to an unknown method: UNIMPLEMENTED naming its path quoted and clipped, percent-encoded (grpc-js echoed 60 000 characters raw)", async () => {
    const session = new RawGrpcSession(server.address);
    try {
      const long = await session.call(`/x/${"A".repeat(60_000)}`, frame(Buffer.alloc(0)));
      assert.equal(long.grpcStatus, Code.UNIMPLEMENTED);
      assert.match(long.grpcMessage!, /^this server has no method "\/x\/A+"… \(60003 characters\)$/);
      assert.ok(long.grpcMessage!.length < 300, `${long.grpcMessage!.length} characters`);
      // A percent sign in the path is the path's: it reads back as sent, not as the method it would decode to.
      const encoded = await session.call("/tesseract.v1.Tesseract/%41pply", frame(Buffer.alloc(0)));
      assert.equal(encoded.grpcStatus, Code.UNIMPLEMENTED);
      assert.equal(encoded.grpcMessage, 'this server has no method "/tesseract.v1.Tesseract/%41pply"');
    } finally {
      await session.close();
    }
    await stillServing();
  });

  it("a request of more messages than --max-request-messages: RESOURCE_EXHAUSTED as it is decoded (a million tiny tensors held the event loop for seconds)", async () => {
    // meshstats' cell_data with 60 000 entries: each entry and its tensor are two messages.
    const cell_data = Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`k${i}`, fp64([1], [1, 1])]));
    const any = meshAny({ cell_data });
    const o = await send(client, "Apply", applyRequest(any));
    assert.equal(o.code, Code.RESOURCE_EXHAUSTED, o.details);
    assert.match(o.details, /^inputs: cannot decode tesseract\.examples\.meshstats\.v1\.Inputs: more than 100000 messages \(every tensor, map entry, nested message and listed string counts; the server's --max-request-messages\) at mesh\.cell_data/);
    // The request's envelope too (a JVP's tangent map), with the server's limit.
    const tangent_vector = Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`k${i}`, fp64([1], [1])]));
    const jvp = await send(client, "JacobianVectorProduct", encode(type("tesseract.v1.JacobianVectorProductRequest"), { inputs: meshAny(), jvp_inputs: ["mesh.points"], jvp_outputs: ["statistics.barycenter"], tangent_vector }));
    assert.equal(jvp.code, Code.RESOURCE_EXHAUSTED, jvp.details);
    assert.match(jvp.details, /^request: cannot decode tesseract\.v1\.JacobianVectorProductRequest: more than 100000 messages .* at tangent_vector/);
    // A list of strings too (2 million jac_outputs held the event loop for 5.7 s before a refusal).
    const paths = Array.from({ length: 100_001 }, (_, i) => `statistics.p${i}`);
    const jac = await send(client, "Jacobian", jacobianRequest(meshAny(), ["mesh.points"], paths));
    assert.equal(jac.code, Code.RESOURCE_EXHAUSTED, jac.details);
    assert.match(jac.details, /^request: cannot decode tesseract\.v1\.JacobianRequest: more than 100000 messages .* at jac_outputs\.\[\d+\]/);
    await stillServing();
    // Raised, the same inputs are decoded (and refused by meshstats for other reasons, or served).
    const roomy = await startServer({ tesseract: "meshstats", port: 0, logger: silentLogger, maxRequestMessages: 200_000 });
    const roomyClient = new grpc.Client(roomy.address, grpc.credentials.createInsecure());
    try {
      const served = await send(roomyClient, "Apply", applyRequest(any));
      assert.notEqual(served.code, Code.RESOURCE_EXHAUSTED, served.details);
      const describe = encode(type("tesseract.v1.DescribeRequest"), {});
      const limits = await new Promise<number>((resolve, reject) =>
        roomyClient.makeUnaryRequest("/tesseract.v1.Tesseract/Describe", (b: Buffer) => b, (b: Buffer) => type("tesseract.v1.DescribeResponse").decode(b), describe, (err, r) =>
          err ? reject(err) : resolve(Number((r as unknown as { limits: { max_request_messages: number } }).limits.max_request_messages)),
        ),
      );
      assert.equal(limits, 200_000, "Describe reports the limit");
    } finally {
      roomyClient.close();
      await roomy.close();
    }
  });

  describe("invalid UTF-8 is INVALID_ARGUMENT naming the field, on every call shape", () => {
    const badKey = () => {
      const any = meshAny({ cell_data: { KEY: fp64([1], [1, 1]) } });
      return { ...any, value: patch(any.value, "KEY", SURROGATE) };
    };
    for (const [rpc, streaming] of [["Apply", false], ["Jacobian", false], ["JacobianRows", true]] as const) {
      it(`a map key inside the inputs (${rpc})`, async () => {
        const bytes = rpc === "Apply" ? applyRequest(badKey()) : jacobianRequest(badKey());
        expectInvalid(await send(client, rpc, bytes, streaming), /^inputs: cannot decode tesseract\.examples\.meshstats\.v1\.Inputs: mesh\.cell_data \(a key\): string is not valid UTF-8/);
        await stillServing();
      });
    }

    it("a path in the request itself (JacobianRows)", async () => {
      const bytes = patch(jacobianRequest(meshAny(), ["mesh.points", "PTH"]), "PTH", SURROGATE);
      expectInvalid(await send(client, "JacobianRows", bytes, true), /^request: cannot decode tesseract\.v1\.JacobianRequest: jac_inputs\.\[1\]: string is not valid UTF-8/);
      await stillServing();
    });

    it("the type URL", async () => {
      const bytes = patch(applyRequest(meshAny()), "type.", [0x74, 0x79, 0xc0, 0xaf, 0x2e]);
      expectInvalid(await send(client, "Apply", bytes), /^request: cannot decode tesseract\.v1\.ApplyRequest: inputs\.type_url: string is not valid UTF-8/);
    });
  });

  describe("undecodable request bytes are INVALID_ARGUMENT with one log line, for every service", () => {
    const truncatedVarint = Buffer.from([0x0a, 0xff]);
    for (const rpc of ["Apply", "Jacobian", "JacobianVectorProduct", "VectorJacobianProduct", "AbstractEval", "Describe", "CheckGradients"]) {
      it(rpc, async () => {
        const logged = logs.nextCall(rpc);
        const metadata = new grpc.Metadata();
        metadata.set("x-request-id", `bad-bytes-${rpc}`);
        expectInvalid(await send(client, rpc, truncatedVarint, false, metadata), /^request: cannot decode tesseract\.v1\.\w+Request: .*(truncated varint|runs past the end|length)/);
        const line = await logged;
        assert.equal(line.code, Code.INVALID_ARGUMENT);
        assert.equal(line.request_id, `bad-bytes-${rpc}`);
      });
    }

    it("JacobianRows", async () => {
      expectInvalid(await send(client, "JacobianRows", truncatedVarint, true), /^request: cannot decode tesseract\.v1\.JacobianRequest: .*truncated varint/);
    });

    it("health too (reflection, a bidi stream, in test/wire-fuzz.test.ts)", async () => {
      expectInvalid(await send(client, "/grpc.health.v1.Health/Check", Buffer.from([0x0a, 0x05, 0x61])), /^request: cannot decode grpc\.health\.v1\.HealthCheckRequest: service: length 5 runs past the end/);
      await stillServing();
    });

    it("a field with the wrong wire type, field number 0, a group closed by another field", async () => {
      // jac_inputs (field 2, a string) sent as a varint.
      expectInvalid(await send(client, "Jacobian", Buffer.from([0x10, 0x01])), /^request: cannot decode tesseract\.v1\.JacobianRequest: jac_inputs: wire type 0 \(varint\), expected 2 \(length-delimited\) for string/);
      expectInvalid(await send(client, "Apply", Buffer.from([0x02, 0x00])), /ApplyRequest: field number 0/);
      // An unknown group (field 9) closed by field 10's end-group.
      expectInvalid(await send(client, "Apply", Buffer.from([0x4b, 0x54])), /ApplyRequest: end-group tag for field 10 closes the group of field 9/);
    });
  });

  describe("strict decoding inside the Any", () => {
    /** meshstats Inputs whose mesh.points Tensor is `tensor` (raw bytes). */
    const withPoints = (tensor: number[]) => {
      const mesh = [0x1a, tensor.length, ...tensor]; // VolumetricMeshData.points = 3
      return { type_url: MESH_URL, value: Buffer.from([0x0a, mesh.length, ...mesh]) };
    };
    const cases: [string, number[], RegExp][] = [
      ["Tensor.datatype as length-delimited", [0x0a, 0x01, 0x0b], /mesh\.points\.datatype: wire type 2 \(length-delimited\), expected 0 \(varint\) for enum tesseract\.v1\.DataType/],
      ["field number 0", [0x00, 0x01], /mesh\.points: field number 0/],
      ["a group closed by another field's end-group", [0x23, 0x2c], /mesh\.points: end-group tag for field 5 closes the group of field 4/],
      ["an over-long varint", [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /mesh\.points\.datatype: varint (overflows 64 bits|longer than 10 bytes)/],
    ];
    for (const [name, tensor, message] of cases) {
      it(name, async () => {
        expectInvalid(await send(client, "Apply", applyRequest(withPoints(tensor))), new RegExp(`^inputs: cannot decode tesseract\\.examples\\.meshstats\\.v1\\.Inputs: ${message.source}`));
      });
    }

    it("nesting deeper than 100 messages", async () => {
      // Unknown fields are skipped, but their groups are still checked, nesting included.
      const depth = 200;
      const group = [...Array(depth).fill(0x7b), ...Array(depth).fill(0x7c)]; // field 15 start/end groups
      expectInvalid(await send(client, "Apply", applyRequest({ type_url: MESH_URL, value: Buffer.from(group) })), /nested more than 100 groups deep/);
    });
  });

  describe("caller text is quoted short, and absurd lengths are refused early", () => {
    it("a 1 MiB type URL", async () => {
      const o = await send(client, "Apply", applyRequest({ type_url: "t".repeat(1 << 20), value: Buffer.alloc(0) }));
      expectInvalid(o, /^inputs\.type_url is 1048576 characters long, more than the 2048 a type URL may have/);
      await stillServing();
    });

    it("a wrong type URL of 2000 characters is quoted cut to 200", async () => {
      const o = await send(client, "Apply", applyRequest({ type_url: "u".repeat(2000), value: Buffer.alloc(0) }));
      expectInvalid(o, new RegExp(`^inputs has type URL "u{200}"… \\(2000 characters\\), expected`));
    });

    it("a type URL of control characters is cut to 200 characters as escaped, so the message keeps its end (it overflowed the status cap)", async () => {
      const o = await send(client, "Apply", applyRequest({ type_url: "\u0001".repeat(300), value: Buffer.alloc(0) }));
      expectInvalid(o, /^inputs has type URL "(\\u0001){33}"… \(300 characters\), expected "type\.googleapis\.com\/tesseract\.examples\.meshstats\.v1\.Inputs"$/);
    });

    it("a 1 MiB path and a path of 100 000 segments", async () => {
      for (const bad of ["p".repeat(1 << 20), Array(100_000).fill("a").join(".")]) {
        const o = await send(client, "Jacobian", jacobianRequest(meshAny(), [bad]));
        expectInvalid(o, /^jac_inputs: bad path "[pa.]{200}"… \(\d+ characters\): longer than the 4096 characters a path may have/);
      }
      await stillServing();
    });

    it("text cut where a character has two UTF-16 units keeps it whole or leaves it out (an emoji cut in two left a lone surrogate, which strict JSON decoders refuse)", () => {
      const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
      for (const before of [199, 198, 39, 38]) {
        const text = `${"a".repeat(before)}\u{1F600}${"b".repeat(300)}`;
        for (const [name, cut] of [["clip", clip(text)], ["quote", quote(text)], ["shown", shown([text])], ["shortInput", String(shortInput(text))]] as const) {
          assert.ok(!lone.test(cut), `${name} of ${before} + an emoji: ${JSON.stringify(cut.slice(before - 2, before + 4))}`);
          assert.match(cut, /… \(\d+ characters\)$/, name);
        }
      }
    });

    it("a list of 50 000 available paths is cut to 20", async () => {
      const runtime = loadTesseract(path.join(POLYNOMIAL, "polynomial.js"));
      const params = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, f64([i])]));
      const inputs = { x: f64([1, 2]), params, blocks: [], mode: "" };
      await assert.rejects(runtime.jacobian({ inputs, inputPaths: ["nothing"], outputPaths: ["f"] }), (e: Error) => {
        assert.match(e.message, /^jac_inputs: input path "nothing" does not exist; differentiable input paths: x, params\.\{k0\}, (params\.\{k\d+\}, ){18}… and 49981 more$/);
        return true;
      });
      await runtime.close();
    });
  });

  describe('map keys "__proto__", "constructor" and "prototype" are data', () => {
    for (const key of ["__proto__", "constructor", "prototype"]) {
      it(`an INT32 tensor under "${key}" in an FP64 map is refused, naming the key`, async () => {
        const any = meshAny({ cell_data: { [key]: int32([1], [1, 1]) } });
        expectInvalid(await send(client, "Apply", applyRequest(any)), new RegExp(`^mesh\\.cell_data\\.\\{${key}\\} has datatype DATA_TYPE_INT32, expected DATA_TYPE_FP64`));
      });
    }

    it("each reaches apply as an own key, and is differentiated like any other", async () => {
      const runtime = loadTesseract(path.join(POLYNOMIAL, "polynomial.js"));
      const entries: [string, number][] = [["__proto__", 3], ["constructor", 4], ["prototype", 5]];
      // protobufjs' encoder reads maps from objects, where "__proto__" is a setter: write the entries by hand.
      const t = runtime.schema.inputs.type;
      const writer = t.encode({ x: fp64([1, 2], [2]) });
      const tensorType = t.fields.params.resolvedType as protobuf.Type;
      assert.equal(tensorType.fullName, ".tesseract.v1.Tensor");
      for (const [key, value] of entries) {
        const tensor = tensorType.encode(fp64([value], [1])).finish();
        const keyBytes = Buffer.from(key);
        const entry = Buffer.concat([Buffer.from([0x0a, keyBytes.length]), keyBytes, Buffer.from([0x12, tensor.length]), tensor]);
        writer.uint32((t.fields.params.id << 3) | 2).bytes(entry);
      }
      const inputs = runtime.decodeInputs({ type_url: runtime.schema.inputs.typeUrl, value: writer.finish() });
      const params = inputs.params as Record<string, unknown>;
      assert.deepEqual(Object.keys(params), ["__proto__", "constructor", "prototype"]);
      assert.equal(Object.getPrototypeOf(params), null);
      const jacobian = await runtime.jacobian({ inputs, inputPaths: ["params.{}"], outputPaths: ["g"] });
      assert.deepEqual(jacobian.entries.map((e) => e.inputPath), ["params.{__proto__}", "params.{constructor}", "params.{prototype}"]);
      // As output keys too: named{k} = params{k}^2 * sum(x), so d named{k} / d x_i = params{k}^2.
      const outputs = await runtime.jacobian({ inputs, inputPaths: ["x"], outputPaths: ["named.{}"] });
      assert.deepEqual(outputs.entries.map((e) => e.outputPath), ["named.{__proto__}", "named.{constructor}", "named.{prototype}"]);
      outputs.entries.forEach((e, k) => assert.ok(maxAbsDiff(e.values, [entries[k][1] ** 2, entries[k][1] ** 2]) < 1e-6, `${e.outputPath}: ${e.values}`));
      await runtime.close();
    });
  });

  describe("sparsity patterns and options (issue 14's fields)", () => {
    const BARY = "statistics.barycenter";
    const withSparsity = (sparsity: object[], options?: object) =>
      encode(type("tesseract.v1.JacobianRequest"), { inputs: meshAny(), jac_inputs: ["mesh.points"], jac_outputs: [BARY], sparsity, options });

    it("indices packed (as protobuf writes them) and unpacked are both read; a 64-bit index out of range is refused naming the pair", async () => {
      const o = await send(client, "Jacobian", withSparsity([{ output_path: BARY, input_path: "mesh.points", output_index: [0, 1, 2], input_index: [0, 1, 2] }]));
      assert.equal(o.code, 0, o.details);
      // The same pattern with output_index unpacked: three (tag 3, varint) fields inside the SparsityPattern.
      const pattern = [0x0a, BARY.length, ...Buffer.from(BARY), 0x12, 11, ...Buffer.from("mesh.points"), 0x18, 0, 0x18, 1, 0x18, 2, 0x22, 3, 0, 1, 2];
      const unpacked = Buffer.concat([jacobianRequest(meshAny()), Buffer.from([0x2a, pattern.length, ...pattern])]);
      assert.equal((await send(client, "Jacobian", unpacked)).code, 0);
      const huge = withSparsity([{ output_path: BARY, input_path: "mesh.points", output_index: ["18446744073709551615"], input_index: [0] }]);
      expectInvalid(await send(client, "JacobianRows", huge, true), /^sparsity\[0\] \(output_path "statistics\.barycenter", input_path "mesh\.points"\): output_index\[0\] = 18446744073709551615 is out of range for statistics\.barycenter, which has 3 elements/);
      await stillServing();
    });

    it("a packed list over its cap is refused at its length prefix, before its values are read: a shape of a million dimensions, 4 M + 1 index pairs", async () => {
      // Decoded whole first, 30 M packed zeros in a shape took 3.5 s of event loop and 1.3 GB; 30 M
      // pairs 4.5 s. "(at byte N)" is where the list's values start: none of them was read.
      const points = { ...fp64([0, 0, 0, 1, 2, 3], [2, 3]), shape: new Array(1_000_000).fill(0) };
      const inputs = encode(type("tesseract.examples.meshstats.v1.Inputs"), { ...meshMessage(), mesh: { ...meshMessage().mesh, points } });
      const shapeAt = inputs.indexOf(Buffer.concat([Buffer.from([0x12]), varintBytes(1_000_000), Buffer.from([0])])) + 1 + varintBytes(1_000_000).length;
      expectInvalid(
        await send(client, "Apply", applyRequest({ type_url: MESH_URL, value: inputs })),
        new RegExp(`^inputs: cannot decode tesseract\\.examples\\.meshstats\\.v1\\.Inputs: mesh\\.points\\.shape: 1000000 values, expected at most 64 dimensions \\(at byte ${shapeAt}\\)$`),
      );
      // JacobianRequest.sparsity (5) { output_path, input_path, output_index (3): 4 M + 1 packed zeros }.
      const indices = Buffer.concat([Buffer.from([0x1a]), varintBytes(MAX_PATTERN_NONZEROS + 1), Buffer.alloc(MAX_PATTERN_NONZEROS + 1)]);
      const pattern = Buffer.concat([Buffer.from([0x0a, BARY.length, ...Buffer.from(BARY), 0x12, 11, ...Buffer.from("mesh.points")]), indices]);
      const o = await send(client, "Jacobian", Buffer.concat([jacobianRequest(meshAny()), Buffer.from([0x2a]), varintBytes(pattern.length), pattern]));
      assert.equal(o.code, Code.RESOURCE_EXHAUSTED, o.details);
      assert.match(o.details, /^request: cannot decode tesseract\.v1\.JacobianRequest: sparsity\.\[0\]\.output_index: 4000001 values in all, expected at most 4000000 index pairs per request; leave dense blocks out rather than listing every entry \(at byte \d+\)$/);
      // Split over patterns, the lists count together (8 patterns of 3.9 M pairs each took 7 s and 1.3 GB, the server deaf meanwhile).
      const split = (n: number) => {
        const list = Buffer.concat([Buffer.from([0x1a]), varintBytes(n), Buffer.alloc(n)]);
        const one = Buffer.concat([Buffer.from([0x0a, BARY.length, ...Buffer.from(BARY), 0x12, 11, ...Buffer.from("mesh.points")]), list]);
        return Buffer.concat([Buffer.from([0x2a]), varintBytes(one.length), one]);
      };
      const parts = await send(client, "Jacobian", Buffer.concat([jacobianRequest(meshAny()), ...new Array(5).fill(split(900_000))]));
      assert.equal(parts.code, Code.RESOURCE_EXHAUSTED, parts.details);
      assert.match(parts.details, /: sparsity\.\[4\]\.output_index: 4500000 values in all, expected at most 4000000 index pairs per request/);
      // One value at a time (unpacked), the count is checked as each arrives.
      // Inputs.mesh (1) { points (3) { datatype (1): FP64, shape (2): 1, 65 times } }.
      const tensor = Buffer.from([0x08, DataType.DATA_TYPE_FP64, ...new Array(65).fill([0x10, 1]).flat()]);
      const mesh = Buffer.concat([Buffer.from([0x1a]), varintBytes(tensor.length), tensor]);
      const any = Buffer.concat([Buffer.from([0x0a]), varintBytes(mesh.length), mesh]);
      expectInvalid(await send(client, "Apply", applyRequest({ type_url: MESH_URL, value: any })), /: mesh\.points\.shape: more values, expected at most 64 dimensions \(at byte \d+\)$/);
      await stillServing();
    });

    it("an index with the wrong wire type, a path of 1 MiB, an unknown sparsity_mode", async () => {
      // output_index (field 3 of the pattern) as a 64-bit fixed field.
      const pattern = [0x19, 0, 0, 0, 0, 0, 0, 0, 0];
      expectInvalid(await send(client, "Jacobian", Buffer.concat([jacobianRequest(meshAny()), Buffer.from([0x2a, pattern.length, ...pattern])])), /^request: cannot decode tesseract\.v1\.JacobianRequest: sparsity\.\[0\]\.output_index: wire type 1 \(64-bit\), expected 0 \(varint\) for uint64/);
      const long = withSparsity([{ output_path: "p".repeat(1 << 20), input_path: "mesh.points", output_index: [0], input_index: [0] }]);
      expectInvalid(await send(client, "Jacobian", long), /^sparsity\[0\] \(output_path "p{20,}.*: output_path is not a requested output \(statistics\.barycenter\)$/);
      expectInvalid(await send(client, "VectorJacobianProduct", encode(type("tesseract.v1.VectorJacobianProductRequest"), { inputs: meshAny(), vjp_inputs: ["mesh.points"], vjp_outputs: [BARY], cotangent_vector: { [BARY]: fp64([1, 2, 3], [3]) }, options: { sparsity_mode: 99 } })), /^options\.sparsity_mode: unknown sparsity mode 99; expected 0, 1 or 2/);
      await stillServing();
    });
  });

  describe("defaults computed from the caller's inputs", () => {
    it("meshstats fd_algorithm = 99 or -1 (ts-proto's UNRECOGNIZED, Apply said OK) is INVALID_ARGUMENT naming the field, for Apply and Jacobian", async () => {
      for (const value of [99, -1]) {
        for (const rpc of ["Apply", "Jacobian"]) {
          const any = meshAny({ fd_algorithm: value });
          const o = await send(client, rpc, rpc === "Apply" ? applyRequest(any) : jacobianRequest(any));
          expectInvalid(o, new RegExp(`^fd_algorithm is ${value}, not a tesseract\\.v1\\.Algorithm`));
        }
      }
    });

    it("a Tesseract without validation: the default from the inputs is the caller's error", async () => {
      const base = loadTesseract(path.join(POLYNOMIAL, "polynomial.js"));
      const runtime = new TesseractRuntime({ ...base.definition, finiteDifferences: { algorithm: () => 99 as never } }, POLYNOMIAL);
      const inputs = { x: f64([1, 2]), params: {}, blocks: [], mode: "" };
      await assert.rejects(runtime.jacobian({ inputs, inputPaths: ["x"], outputPaths: ["f"] }), (e: Error & { code: number }) => {
        assert.equal(e.code, Code.INVALID_ARGUMENT);
        assert.match(e.message, /^algorithm: unknown algorithm 99; expected one of .* \(the Tesseract's default, computed from the inputs: fix the inputs or set the option in the request\)$/);
        return true;
      });
      await runtime.close();
    });
  });
});

describe("statuses are safe to send whatever the error says", () => {
  /** The polynomial fixture with an apply that throws `error`. */
  async function throwingServer(error: unknown, logger = silentLogger): Promise<RunningServer> {
    const base = loadTesseract(path.join(POLYNOMIAL, "polynomial.js"));
    const definition = {
      ...base.definition,
      apply: () => {
        throw error;
      },
    };
    return startServer({ tesseract: new TesseractRuntime(definition, POLYNOMIAL), port: 0, logger, workers: 0 });
  }

  function polynomialRequest(server: RunningServer, rpc: "Apply" | "JacobianRows"): Buffer {
    const inputs = server.runtime.schema.inputs;
    const any = { type_url: inputs.typeUrl, value: Buffer.from(inputs.type.encode({ x: fp64([1, 2], [2]) }).finish()) };
    return rpc === "Apply" ? applyRequest(any) : encode(type("tesseract.v1.JacobianRequest"), { inputs: any, jac_inputs: ["x"], jac_outputs: ["f"] });
  }

  it("a message with lone surrogates and a megabyte of text: replaced and cut, on unary and streaming calls", async () => {
    const server = await throwingServer(new Error(`\ud800 broken \udfff ${"x".repeat(1 << 20)}`));
    const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    try {
      for (const rpc of ["Apply", "JacobianRows"] as const) {
        const o = await send(client, rpc, polynomialRequest(server, rpc), rpc === "JacobianRows");
        assert.equal(o.code, Code.UNKNOWN, o.details);
        assert.match(o.details, /\ufffd broken \ufffd x+… \(message cut\)$/);
        assert.ok(Buffer.byteLength(o.details) <= MAX_DETAILS_BYTES);
      }
    } finally {
      client.close();
      await server.close();
    }
  });

  it("an error while answering (the log destination fails) is answered INTERNAL with a request id, and the server goes on", async () => {
    const failing = pino({ level: "info" }, {
      write(line: string) {
        if (JSON.parse(line).msg === "call") throw new Error("log destination failed");
      },
    });
    const server = await throwingServer(new Error("apply failed"), failing);
    const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
    try {
      for (const rpc of ["Apply", "JacobianRows", "Apply"] as const) {
        const o = await send(client, rpc, polynomialRequest(server, rpc), rpc === "JacobianRows");
        assert.equal(o.code, Code.INTERNAL, o.details);
        assert.match(o.details, /^internal error \(request id [\w-]+\); see the server log$/);
      }
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('the SDK and the CLI keep map keys such as "__proto__" as data', () => {
  const meshType = type("tesseract.examples.meshstats.v1.Inputs");
  const keys = ["__proto__", "constructor", "prototype"];

  it("CLI JSON: map keys arrive in the tree; a message key that is no field is refused", () => {
    const json = JSON.parse(`{"mesh": {"cell_data": {${keys.map((k) => `"${k}": [[1]]`).join(", ")}}}}`);
    const tree = jsonToTree(meshType, json) as { mesh: { cell_data: Record<string, unknown> } };
    assert.deepEqual(Object.keys(tree.mesh.cell_data), keys);
    for (const key of keys) {
      assert.throws(() => jsonToTree(meshType, JSON.parse(`{"${key}": 1}`)), { message: `${key}: Inputs has no such field; fields: mesh, fd_algorithm` });
    }
  });

  it("CLI JSON: scalars are checked against their field's type (an int64 string past 2^64 was sent modulo 2^64: 1)", () => {
    const mesh = (n_points: unknown) => ({ mesh: { n_points, n_cells: 1 } });
    for (const value of ["18446744073709551617", "-18446744073709551615", "99999999999999999999", 1.5, "12a", true]) {
      assert.throws(() => jsonToTree(meshType, mesh(value)), { message: `mesh.n_points is ${JSON.stringify(value)}, expected an integer from -9007199254740991 to 9007199254740991 (int64, within ±(2^53 - 1), the integers a JSON number holds exactly)` });
    }
    assert.equal((jsonToTree(meshType, mesh("9007199254740991")) as { mesh: { n_points: number } }).mesh.n_points, 9007199254740991);
    assert.deepEqual(jsonToTree(meshType, { mesh: { n_points: null, n_cells: 2 } }), { mesh: { n_cells: 2 } }, "null: unset, as in tesseract-core's JSON");
    assert.throws(() => jsonToTree(meshType, { fd_algorithm: 2 ** 63 }), /^TesseractError: fd_algorithm: unknown \w+ value 9223372036854776000/);
    // The short names it takes come first (a bridged Tesseract's "add" works where MODE_VALUE_ADD was all it listed).
    assert.throws(() => jsonToTree(meshType, { fd_algorithm: "backwards" }), { message: 'fd_algorithm: unknown Algorithm value "backwards"; expected one of central, forward, stochastic, richardson, adaptive (or ALGORITHM_UNSPECIFIED, ALGORITHM_CENTRAL, ALGORITHM_FORWARD, ALGORITHM_STOCHASTIC, ALGORITHM_RICHARDSON, ALGORITHM_ADAPTIVE)' });
    // A map or list given as something else: named (a TypeError from .map before).
    assert.throws(() => jsonToTree(meshType, { mesh: { cell_data: [1] } }), { message: "mesh.cell_data: expected an object (a map)" });
    // An empty nested list is float64, as every nested list is (it was BOOL).
    assert.ok((jsonToTree(meshType, { mesh: { points: [] } }) as { mesh: { points: { data: unknown } } }).mesh.points.data instanceof Float64Array);
  });

  it("CLI JSON: two members of a oneof are refused, naming both (the last was kept, the other dropped)", () => {
    const choice = protobufjs.parse('syntax = "proto3"; message Choice { oneof choice { double alpha = 1; double beta = 2; } optional double gamma = 3; }').root.lookupType("Choice");
    assert.throws(() => jsonToTree(choice, { alpha: 0.7, beta: 3 }), { message: "inputs: alpha and beta are both set, but they are members of oneof choice; set one of them" });
    assert.deepEqual(jsonToTree(choice, { beta: 3, gamma: 1 }), { beta: 3, gamma: 1 });
    assert.deepEqual(jsonToTree(choice, { alpha: 0.7, beta: null }), { alpha: 0.7 }, "null: unset");
  });

  it("SDK: tensors under such keys are encoded, not dropped", () => {
    const cell_data = recordFrom(keys.map((k) => [k, f64([1], [1, 1])]));
    const encoded = toTensors({ mesh: { cell_data } }) as { mesh: { cell_data: Record<string, { datatype: number }> } };
    assert.deepEqual(Object.keys(encoded.mesh.cell_data), keys);
    assert.ok(Object.values(encoded.mesh.cell_data).every((t) => t.datatype === DataType.DATA_TYPE_FP64));
  });
});
