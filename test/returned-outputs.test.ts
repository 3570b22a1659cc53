/**
 * What the server does with the outputs a Tesseract module's apply returns against the datatypes its
 * .proto declares (test/fixtures/declared/): served for real, called over gRPC and REST, inline and in
 * the worker pool. Arrays are cast to the declared datatype where numpy's same_kind casting allows it
 * and every value survives; otherwise the call fails INTERNAL (REST: 500) with one message naming the
 * output, what was declared and what apply returned. Finite differences read an FP32 output as Apply
 * answers it, and take its precision.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { TesseractClient as GeneratedClient, type AbstractEvalResponse, type ApplyResponse, type JacobianResponse, type JacobianRowsResponse } from "../generated/tesseract/v1/tesseract";
import { startServer, type RunningServer } from "../index";
import { DataType } from "../common/tensor-codec";
import { silentLogger } from "../server/log";
import { call } from "./helpers";

const DECLARED = path.join(__dirname, "../../test/fixtures/declared/declared.js");
const TYPE_URL = "type.googleapis.com/tesseract.testing.declared.v1.Inputs";
const X = [0.5, -1, 2];
const f = (v: number) => v * v + Math.sin(v);

type Json = Record<string, any>;

interface Served {
  server: RunningServer;
  client: GeneratedClient;
  close(): Promise<void>;
}

async function serve(workers: number): Promise<Served> {
  const server = await startServer({ tesseract: DECLARED, port: 0, httpPort: 0, workers, logger: silentLogger, evalCacheBytes: 0 });
  const client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
  return { server, client, close: async () => (client.close(), await server.close(0)) };
}

const fp64 = (values: number[]) => ({ datatype: DataType.DATA_TYPE_FP64, shape: [values.length], data: Buffer.from(Float64Array.from(values).buffer) });

function inputsAny(served: Served, mode: string) {
  return { type_url: TYPE_URL, value: Buffer.from(served.server.runtime.schema.inputs.type.encode({ x: fp64(X), mode }).finish()) };
}

/** A decoded output tensor's datatype, shape and values (bigints for 64-bit integers). */
function tensor(t: { datatype: number; shape: unknown[]; data: Uint8Array }): { datatype: number; shape: number[]; values: (number | bigint)[] } {
  const Ctor = ({ 1: Uint8Array, 8: Int32Array, 9: BigInt64Array, 10: Float32Array, 11: Float64Array } as Record<number, any>)[t.datatype];
  const bytes = new Uint8Array(t.data).slice();
  return { datatype: t.datatype, shape: t.shape.map(Number), values: Array.from(new Ctor(bytes.buffer) as ArrayLike<number | bigint>) };
}

async function applyGrpc(served: Served, mode: string): Promise<Json> {
  const answer = await call<ApplyResponse>((cb) => served.client.apply({ inputs: inputsAny(served, mode) }, cb));
  const outputs = served.server.runtime.schema.outputs.type.decode(answer.outputs!.value) as unknown as Json;
  const out: Json = {};
  for (const [key, value] of Object.entries(outputs)) out[key] = key === "named" ? { sum: tensor(value.sum) } : tensor(value);
  return out;
}

async function post(served: Served, endpoint: string, body: unknown): Promise<{ status: number; text: string; json?: Json }> {
  const res = await fetch(`http://127.0.0.1:${served.server.httpPort}/${endpoint}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, text, json: res.headers.get("content-type")?.includes("json") ? (JSON.parse(text) as Json) : undefined };
}

const restInputs = (mode: string) => ({ x: { object_type: "array", shape: [X.length], dtype: "float64", data: { buffer: X, encoding: "json" } }, mode });

async function grpcFails(promise: Promise<unknown>, code: grpc.status, message: string): Promise<void> {
  const error = (await promise.then(
    () => assert.fail(`expected ${grpc.status[code]}: ${message}`),
    (e: grpc.ServiceError) => e,
  )) as grpc.ServiceError;
  assert.equal(grpc.status[error.code], grpc.status[code], error.details);
  assert.equal(error.details, message);
}

const f32 = (values: number[]) => values.map(Math.fround);

describe("outputs in the datatypes their fields declare", () => {
  for (const workers of [0, 2]) {
    describe(workers ? "apply in the worker pool" : "apply in the server's thread", () => {
      let served: Served;
      before(async () => (served = await serve(workers)));
      after(async () => served?.close());

      it("answers an output declared FP32 that apply returns as a Float64Array in float32, over gRPC and REST, as Describe and AbstractEval say", async () => {
        const out = await applyGrpc(served, "");
        assert.deepEqual(out.y32, { datatype: DataType.DATA_TYPE_FP32, shape: [3], values: f32(X.map(f)) });
        assert.deepEqual(out.named, { sum: { datatype: DataType.DATA_TYPE_FP32, shape: [1], values: [1.5] } });
        assert.deepEqual(out.y64, { datatype: DataType.DATA_TYPE_FP64, shape: [3], values: X.map((v) => 3 * v) });
        // Returned in their declared datatypes: as they are (2^53 + 1 exactly, in a BigInt64Array).
        assert.deepEqual(out.count, { datatype: DataType.DATA_TYPE_INT32, shape: [], values: [3] });
        assert.deepEqual(out.big, { datatype: DataType.DATA_TYPE_INT64, shape: [2], values: [2n ** 53n + 1n, -1n] });
        assert.deepEqual(out.mask, { datatype: DataType.DATA_TYPE_BOOL, shape: [3], values: [1, 0, 1] });

        const rest = await post(served, "apply", { inputs: restInputs("") });
        assert.equal(rest.status, 200, rest.text);
        assert.equal(rest.json!.y32.dtype, "float32");
        assert.deepEqual(rest.json!.y32.data.buffer, f32(X.map(f)));
        assert.equal(rest.json!.named.sum.dtype, "float32");
        assert.ok(rest.text.includes('"buffer":[9007199254740993,-1]'), rest.text);

        const abstract = await call<AbstractEvalResponse>((cb) => served.client.abstractEval({ inputs: inputsAny(served, "") }, cb));
        // abstractEval says FP64 for y32 and named.{sum}, as apply returns them: Apply answers FP32.
        assert.deepEqual(
          abstract.outputs.map((o) => [o.path, o.datatype]),
          [
            ["y32", DataType.DATA_TYPE_FP32],
            ["y64", DataType.DATA_TYPE_FP64],
            ["named.{sum}", DataType.DATA_TYPE_FP32],
            ["count", DataType.DATA_TYPE_INT32],
            ["big", DataType.DATA_TYPE_INT64],
            ["mask", DataType.DATA_TYPE_BOOL],
            ["rounded", DataType.DATA_TYPE_INT32],
          ],
        );
        const restAbstract = await post(served, "abstract_eval", { inputs: { x: { shape: [3], dtype: "float64" }, mode: "" } });
        assert.equal(restAbstract.status, 200, restAbstract.text);
        assert.equal(restAbstract.json!.y32.dtype, "float32");
      });

      it("casts what same_kind casting allows, value by value", async () => {
        const cases: [string, string, Json][] = [
          ["y32-int", "y32", { datatype: DataType.DATA_TYPE_FP32, shape: [3], values: [1, 0, 5] }],
          ["y64-f32", "y64", { datatype: DataType.DATA_TYPE_FP64, shape: [3], values: [1.5, -3, 6] }],
          ["count-i64", "count", { datatype: DataType.DATA_TYPE_INT32, shape: [], values: [3] }],
          ["count-list", "count", { datatype: DataType.DATA_TYPE_INT32, shape: [], values: [3] }],
          ["big-i32", "big", { datatype: DataType.DATA_TYPE_INT64, shape: [2], values: [7n, -1n] }],
        ];
        for (const [mode, output, expected] of cases) {
          assert.deepEqual((await applyGrpc(served, mode))[output], expected, mode);
          const rest = await post(served, "apply", { inputs: restInputs(mode) });
          assert.equal(rest.status, 200, `${mode}: ${rest.text}`);
          assert.equal(rest.json![output].dtype, { 8: "int32", 9: "int64", 10: "float32", 11: "float64" }[expected.datatype as number], mode);
        }
      });

      it("refuses what it does not cast: INTERNAL over gRPC, 500 over REST, one message naming the output, the declared dtype and what apply returned", async () => {
        const sameKind = (from: string, to: string) => `numpy's same_kind casting, which tesseract-core applies to outputs, does not cast ${from} to ${to}`;
        const cases: [string, string][] = [
          ["count-float", `apply returned output count as float64, declared int32: ${sameKind("float64", "int32")}`],
          ["count-whole", `apply returned output count as float64, declared int32: ${sameKind("float64", "int32")}`],
          ["count-list-nan", "apply returned output count with NaN at flat index 0 (a plain Array), which its declared dtype int32 cannot hold"],
          ["count-i64-big", "apply returned output count with 1099511627776 at flat index 0 (int64), which its declared dtype int32 cannot hold"],
          ["big-numbers", `apply returned output big as float64, declared int64: ${sameKind("float64", "int64")}`],
          ["big-list", "apply returned output big with 9007199254740994 at flat index 0 (a plain Array), past ±(2^53 − 1), where a JavaScript number is inexact: return int64 values in a BigInt64Array"],
          ["mask-f64", `apply returned output mask as float64, declared bool: ${sameKind("float64", "bool")}; return a BoolArray (exported by tesseract-grpc) of 0 and 1`],
          ["mask-u8", `apply returned output mask as uint8, declared bool: ${sameKind("uint8", "bool")}; return a BoolArray (exported by tesseract-grpc) of 0 and 1`],
          ["y32-huge", "apply returned output y32 with 1e+300 at flat index 0 (float64), which its declared dtype float32 cannot hold"],
        ];
        for (const [mode, message] of cases) {
          await grpcFails(applyGrpc(served, mode), grpc.status.INTERNAL, message);
          const rest = await post(served, "apply", { inputs: restInputs(mode) });
          assert.deepEqual([rest.status, rest.text], [500, message], mode);
        }
      });

      it("differentiates an FP32 output as Apply answers it: float32 values, divided by the step taken", async () => {
        // The fixture's eps is 1e-3, central: (fl32(f(x + h)) - fl32(f(x - h))) / (2h as taken), exactly.
        const expected = X.map((x) => (Math.fround(f(x + 1e-3)) - Math.fround(f(x - 1e-3))) / (x + 1e-3 - (x - 1e-3)));
        const answer = await call<JacobianResponse>((cb) => served.client.jacobian({ inputs: inputsAny(served, ""), jac_inputs: ["x"], jac_outputs: ["y32"], sparsity: [] }, cb));
        const J = Array.from(new Float64Array(new Uint8Array(answer.entries[0].value!.data).slice().buffer));
        assert.deepEqual([J[0], J[4], J[8]], expected);
        // Accurate to what float32 allows: rounding u|f|/h ≈ 3e-4 of the largest |f|, here far less.
        X.forEach((x, i) => assert.ok(Math.abs(J[4 * i] - (2 * x + Math.cos(x))) < 1e-4, `dy32/dx${i} = ${J[4 * i]}`));
        const rest = await post(served, "jacobian", { inputs: restInputs(""), jac_inputs: ["x"], jac_outputs: ["y32"] });
        assert.deepEqual(rest.json!.y32.x.data.buffer.map((row: number[], i: number) => row[i]), expected);
        // The streamed header says FP32, as Describe does.
        const messages = await new Promise<JacobianRowsResponse[]>((resolve, reject) => {
          const got: JacobianRowsResponse[] = [];
          const stream = served.client.jacobianRows({ inputs: inputsAny(served, ""), jac_inputs: ["x"], jac_outputs: ["y32"], sparsity: [] });
          stream.on("data", (m: JacobianRowsResponse) => got.push(m)).on("error", reject).on("end", () => resolve(got));
        });
        assert.deepEqual(messages[0].header!.outputs.map((o) => [o.path, o.datatype]), [["y32", DataType.DATA_TYPE_FP32]]);
      });

      it("refuses an integer at a differentiable output in the same words over gRPC and REST", async () => {
        const cases: [string, string, string][] = [
          ["rounded", "rounded", "output rounded is declared int32 at a differentiable path: expected float32 or float64 (finite differences of integers are rounding jumps)"],
          ["y32-int", "y32", "apply returned output y32 as int32, at a differentiable path: expected float32 or float64 (finite differences of integers are rounding jumps)"],
        ];
        for (const [mode, output, message] of cases) {
          const grpcError = (await call<JacobianResponse>((cb) => served.client.jacobian({ inputs: inputsAny(served, mode), jac_inputs: ["x"], jac_outputs: [output], sparsity: [] }, cb)).then(
            () => assert.fail(mode),
            (e: grpc.ServiceError) => e,
          )) as grpc.ServiceError;
          assert.equal(grpcError.code, grpc.status.INTERNAL, grpcError.details);
          assert.ok(grpcError.details.endsWith(`failed: ${message}`), grpcError.details);
          const rest = await post(served, "jacobian", { inputs: restInputs(mode), jac_inputs: ["x"], jac_outputs: [output] });
          // Which element's evaluation meets it first varies in the pool: the words after it are compared.
          const words = (details: string) => details.replace(/^evaluation at x\[\d+\]/, "evaluation at x[…]");
          assert.deepEqual([rest.status, words(rest.text)], [500, words(grpcError.details)], mode);
        }
      });
    });
  }
});
