import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import ndarray, { type NdArray } from "ndarray";
import { Code } from "../index";
import { PROTO_DIR } from "../server/proto-dir";
import { loadRoot, loadRootFromText, MessageSchema, TesseractSchema, type AnyMessage } from "../server/schema/schema";
import { DataType } from "../common/tensor-codec";
import { inputsAny } from "../server/schema/json-messages";

const fixtureDir = path.join(__dirname, "../../test/fixtures/polynomial");
const INPUTS = "tesseract.testing.polynomial.v1.Inputs";
const OUTPUTS = "tesseract.testing.polynomial.v1.Outputs";
const INPUTS_URL = `type.googleapis.com/${INPUTS}`;
const OUTPUTS_URL = `type.googleapis.com/${OUTPUTS}`;

/** A wire Tensor as protobufjs takes it for encoding. */
interface WireTensor {
  datatype: number;
  shape: number[];
  data: Buffer;
}

const bytes = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const fp64 = (values: number[], shape = [values.length]): WireTensor => ({ datatype: DataType.DATA_TYPE_FP64, shape, data: bytes(Float64Array.from(values)) });
const fp32 = (values: number[], shape = [values.length]): WireTensor => ({ datatype: DataType.DATA_TYPE_FP32, shape, data: bytes(Float32Array.from(values)) });
const int32 = (values: number[], shape = [values.length]): WireTensor => ({ datatype: DataType.DATA_TYPE_INT32, shape, data: bytes(Int32Array.from(values)) });

/** Row-major values of an ndarray via get(), as numbers. */
function flat(a: NdArray<any>): number[] {
  const out: number[] = [];
  const n = a.shape.reduce((p, d) => p * d, 1);
  const idx = new Array<number>(a.shape.length).fill(0);
  for (let k = 0; k < n; k++) {
    out.push(Number(a.get(...idx)));
    for (let j = idx.length - 1; j >= 0 && ++idx[j] === a.shape[j]; j--) idx[j] = 0;
  }
  return out;
}

/** Asserts an ndarray leaf: typed-array class, shape and values. */
function assertArray(leaf: unknown, ctor: Function, shape: number[], values: number[]): void {
  const a = leaf as NdArray<any>;
  assert.ok(a && typeof a === "object" && "shape" in a, `expected an ndarray, got ${String(leaf)}`);
  assert.ok(a.data instanceof ctor, `expected ${ctor.name}, got ${(a.data as object).constructor.name}`);
  assert.deepEqual(a.shape, shape);
  assert.deepEqual(flat(a), values);
}

/** Asserts that `fn` throws a TesseractError with `code` and a message matching every regex. */
function throwsCode(fn: () => unknown, code: Code, ...messages: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code, `code of ${String(err)}`);
    for (const m of messages) assert.match((err as Error).message, m);
    return true;
  });
}
const throwsInvalid = (fn: () => unknown, ...messages: RegExp[]) => throwsCode(fn, Code.INVALID_ARGUMENT, ...messages);

/** Regex-escapes a literal. */
const lit = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));

describe("schema: polynomial fixture", () => {
  const root = loadRoot([path.join(fixtureDir, "polynomial.proto")], [fixtureDir]);
  const schema = new TesseractSchema(root, INPUTS, OUTPUTS);
  const inputs = schema.inputs;
  const outputs = schema.outputs;

  /** Encodes a plain Inputs object into an Any, the way a client would. */
  const anyOf = (message: Record<string, unknown>, s: MessageSchema = inputs): AnyMessage => ({
    type_url: s.typeUrl,
    value: s.type.encode(message).finish(),
  });

  const fullMessage = () => ({
    x: fp64([0.5, -1.25, 3]),
    y: fp64([2], []),
    params: {
      "a.b": fp64([1, 2, 3, 4], [2, 2]),
      "with space": fp32([0.5]),
      "{br}ace": fp64([7], []),
    },
    blocks: [{ w: fp64([1, 2]) }, { w: fp32([3, 4, 5]) }],
    counts: int32([7, -8, 9]),
    mode: "nan",
  });

  describe("types and names", () => {
    it("looks up the input and output types with their full names and type URLs", () => {
      assert.equal(inputs.fullName, INPUTS);
      assert.equal(outputs.fullName, OUTPUTS);
      assert.equal(inputs.typeUrl, INPUTS_URL);
      assert.equal(outputs.typeUrl, OUTPUTS_URL);
    });

    it("refuses a message type the protos do not declare, naming it", () => {
      assert.throws(() => new TesseractSchema(root, "tesseract.testing.polynomial.v1.Nope", OUTPUTS), /^Error: inputType: message type tesseract\.testing\.polynomial\.v1\.Nope is not declared in the Tesseract's \.proto files; they declare tesseract\.testing\.polynomial\.v1\.Block, tesseract\.testing\.polynomial\.v1\.Inputs, tesseract\.testing\.polynomial\.v1\.Outputs$/);
      assert.throws(() => new TesseractSchema(root, INPUTS, "tesseract.testing.polynomial.v1.Output"), /^Error: outputType: message type tesseract\.testing\.polynomial\.v1\.Output is not declared in the Tesseract's \.proto files; they declare .*tesseract\.testing\.polynomial\.v1\.Outputs/);
    });

    it("takes only a full name: one without its package, or part of it, is refused with the full name it resembles (protobufjs would find it in any namespace)", () => {
      const declared = "they declare tesseract.testing.polynomial.v1.Block, tesseract.testing.polynomial.v1.Inputs, tesseract.testing.polynomial.v1.Outputs";
      for (const name of ["Inputs", "polynomial.v1.Inputs", "tesseract.testing.polynomial.Inputs", "tesseract.Inputs"]) {
        assert.throws(
          () => new TesseractSchema(root, name, OUTPUTS),
          (e: Error) => e.message === `inputType: message type ${name} is not declared in the Tesseract's .proto files; did you mean ${INPUTS}? (the full name, package included); ${declared}`,
          name,
        );
      }
      assert.throws(() => new TesseractSchema(root, INPUTS, "Outputs"), (e: Error) => e.message.startsWith(`outputType: message type Outputs is not declared in the Tesseract's .proto files; did you mean ${OUTPUTS}?`));
      // The full name, with or without protobuf's leading dot.
      assert.equal(new TesseractSchema(root, `.${INPUTS}`, OUTPUTS).inputs.fullName, INPUTS);
    });
  });

  describe("decodeAny", () => {
    it("turns every Tensor into an ndarray of the matching typed array, keeping shapes and values", () => {
      const tree = inputs.decodeAny(anyOf(fullMessage()), "inputs");
      assert.deepEqual(Object.keys(tree), ["x", "y", "params", "blocks", "counts", "mode"]);
      assertArray(tree.x, Float64Array, [3], [0.5, -1.25, 3]);
      assertArray(tree.y, Float64Array, [], [2]);
      assertArray(tree.counts, Int32Array, [3], [7, -8, 9]);
      assert.equal(tree.mode, "nan");
    });

    it("keeps map keys verbatim (dots, spaces, braces) with each entry decoded", () => {
      const tree = inputs.decodeAny(anyOf(fullMessage()), "inputs");
      const params = tree.params as Record<string, unknown>;
      assert.deepEqual(Object.keys(params).sort(), ["a.b", "with space", "{br}ace"].sort());
      assertArray(params["a.b"], Float64Array, [2, 2], [1, 2, 3, 4]);
      assertArray(params["with space"], Float32Array, [1], [0.5]);
      assertArray(params["{br}ace"], Float64Array, [], [7]);
    });

    it("decodes repeated messages into an array of trees, in order", () => {
      const tree = inputs.decodeAny(anyOf(fullMessage()), "inputs");
      const blocks = tree.blocks as { w: unknown }[];
      assert.ok(Array.isArray(blocks));
      assert.equal(blocks.length, 2);
      assertArray(blocks[0]!.w, Float64Array, [2], [1, 2]);
      assertArray(blocks[1]!.w, Float32Array, [3], [3, 4, 5]);
    });

    it("decodes a fresh copy each time (perturbing one tree leaves the next decode alone)", () => {
      const any = anyOf(fullMessage());
      const first = inputs.decodeAny(any, "inputs");
      (first.x as NdArray<Float64Array>).data[0] = 99;
      const second = inputs.decodeAny(any, "inputs");
      assertArray(second.x, Float64Array, [3], [0.5, -1.25, 3]);
    });

    it("makes unset tensor fields undefined and unset containers empty", () => {
      const tree = inputs.decodeAny(anyOf({ x: fp64([1]), blocks: [{}] }), "inputs");
      assertArray(tree.x, Float64Array, [1], [1]);
      assert.equal(tree.y, undefined);
      assert.equal(tree.counts, undefined);
      assert.ok(Object.hasOwn(tree, "y"), "every declared field is present in the tree");
      assert.deepEqual({ ...(tree.params as object) }, {});
      assert.equal(Object.getPrototypeOf(tree.params), null, "maps have no prototype: any key is data");
      assert.equal((tree.blocks as unknown[]).length, 1);
      assert.equal((tree.blocks as { w: unknown }[])[0]!.w, undefined);
      assert.equal(tree.mode, "");
    });

    it("decodes an empty Any value as the all-defaults message", () => {
      const tree = inputs.decodeAny({ type_url: INPUTS_URL, value: new Uint8Array(0) }, "inputs");
      assert.deepEqual({ ...tree, params: { ...(tree.params as object) } }, { x: undefined, y: undefined, params: {}, blocks: [], counts: undefined, mode: "" });
    });

    it("gives abstract tensors (shape, no data) as {shape, datatype} only when asked", () => {
      const message = {
        x: { datatype: DataType.DATA_TYPE_FP32, shape: [4], data: Buffer.alloc(0) },
        y: { datatype: DataType.DATA_TYPE_FP64, shape: [], data: Buffer.alloc(0) },
        params: { k: { datatype: DataType.DATA_TYPE_FP64, shape: [2, 3], data: Buffer.alloc(0) }, full: fp64([1, 2]) },
        blocks: [{ w: { datatype: DataType.DATA_TYPE_INT32, shape: [5], data: Buffer.alloc(0) } }],
      };
      const tree = inputs.decodeAny(anyOf(message), "inputs", { abstract: true });
      assert.deepEqual(tree.x, { shape: [4], datatype: DataType.DATA_TYPE_FP32 });
      assert.deepEqual(tree.y, { shape: [], datatype: DataType.DATA_TYPE_FP64 });
      const params = tree.params as Record<string, unknown>;
      assert.deepEqual(params.k, { shape: [2, 3], datatype: DataType.DATA_TYPE_FP64 });
      // A tensor that does carry data stays a concrete ndarray even in abstract mode.
      assertArray(params.full, Float64Array, [2], [1, 2]);
      assert.deepEqual((tree.blocks as { w: unknown }[])[0]!.w, { shape: [5], datatype: DataType.DATA_TYPE_INT32 });
    });

    it("rejects abstract tensors when not asked for them, naming the path", () => {
      const abstractX = { x: { datatype: DataType.DATA_TYPE_FP64, shape: [4], data: Buffer.alloc(0) } };
      throwsInvalid(() => inputs.decodeAny(anyOf(abstractX), "inputs"), /^x: data has 0 bytes, expected 32 \(shape \[4\] of DATA_TYPE_FP64, 8 bytes each\)$/);
      const abstractParam = { params: { "a.b": { datatype: DataType.DATA_TYPE_FP32, shape: [2], data: Buffer.alloc(0) } } };
      throwsInvalid(() => inputs.decodeAny(anyOf(abstractParam), "inputs"), /^params\.\{a\.b\}: data has 0 bytes, expected 8/);
      const abstractBlock = { blocks: [{ w: fp64([1]) }, { w: { datatype: DataType.DATA_TYPE_FP64, shape: [], data: Buffer.alloc(0) } }] };
      throwsInvalid(() => inputs.decodeAny(anyOf(abstractBlock), "inputs"), /^blocks\.\[1\]\.w: data has 0 bytes, expected 8/);
    });

    it("accepts an empty tensor (a zero in the shape) without data in either mode", () => {
      for (const abstract of [false, true]) {
        const tree = inputs.decodeAny(anyOf({ x: { datatype: DataType.DATA_TYPE_FP64, shape: [0, 3], data: Buffer.alloc(0) } }), "inputs", { abstract });
        assertArray(tree.x, Float64Array, [0, 3], []);
      }
    });
  });

  describe("decodeAny errors (INVALID_ARGUMENT)", () => {
    it("names the field when the Any is missing", () => {
      for (const missing of [undefined, null, { type_url: "", value: new Uint8Array(0) }]) {
        throwsInvalid(() => inputs.decodeAny(missing, "inputs"), /^inputs is missing: expected an Any of type\.googleapis\.com\/tesseract\.testing\.polynomial\.v1\.Inputs$/);
      }
      throwsInvalid(() => inputs.decodeAny(undefined, "apply.inputs"), /^apply\.inputs is missing/);
      // A value without its type URL is there, not missing.
      throwsInvalid(() => inputs.decodeAny({ type_url: "", value: Uint8Array.of(8, 1) }, "inputs"), /^inputs has 2 bytes of value but no type_url: expected "type\.googleapis\.com\/tesseract\.testing\.polynomial\.v1\.Inputs"$/);
    });

    it("names both URLs on a wrong type URL", () => {
      const any = anyOf(fullMessage());
      const wrong = { type_url: OUTPUTS_URL, value: any.value };
      throwsInvalid(() => inputs.decodeAny(wrong, "inputs"), lit(`inputs has type URL "${OUTPUTS_URL}", expected "${INPUTS_URL}"`));
      throwsInvalid(() => inputs.decodeAny({ type_url: "tesseract.testing.polynomial.v1.Input", value: any.value }, "inputs"), /"tesseract\.testing\.polynomial\.v1\.Input"/, lit(INPUTS_URL));
      throwsInvalid(() => inputs.decodeAny({ type_url: `${INPUTS_URL}/`, value: any.value }, "inputs"), lit(`"${INPUTS_URL}/"`));
    });

    it("reports undecodable bytes, naming the field and the type", () => {
      const garbage = [
        // field 1 with wire type 7, which does not exist
        Uint8Array.of(0x0f, 0x01, 0x02),
        // a varint that never ends
        Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
        // field 1 (x) claims 100 bytes, 2 follow
        Uint8Array.of(0x0a, 0x64, 0x08, 0x0b),
      ];
      for (const value of garbage) {
        throwsInvalid(() => inputs.decodeAny({ type_url: INPUTS_URL, value }, "inputs"), /^inputs: cannot decode tesseract\.testing\.polynomial\.v1\.Inputs: \S/);
      }
    });

    it("reports a truncated message", () => {
      const full = anyOf(fullMessage()).value;
      // Cut inside x's data (the first field), inside the params map and inside the blocks. (A cut
      // that falls exactly between two fields leaves a valid, shorter message: protobuf cannot tell.)
      for (const cut of [10, 60, 160]) {
        throwsInvalid(() => inputs.decodeAny({ type_url: INPUTS_URL, value: full.subarray(0, cut) }, "inputs"), /^inputs: cannot decode tesseract\.testing\.polynomial\.v1\.Inputs: (x|params|blocks|mode)\b.*: (length \d+ runs past the end of its message|truncated)/);
      }
      // Cut inside the final string field, given as a plain Uint8Array (not a Buffer).
      const plain = Uint8Array.from(full.subarray(0, full.length - 1));
      throwsInvalid(() => inputs.decodeAny({ type_url: INPUTS_URL, value: plain }, "inputs"), /^inputs: cannot decode tesseract\.testing\.polynomial\.v1\.Inputs: (x|params|blocks|mode)\b.*: (length \d+ runs past the end of its message|truncated)/);
    });

    // protobufjs' Buffer reader clamps a truncated string instead of throwing; decodeAny must not use it.
    it("reports a message cut inside a string field, given as a Buffer", () => {
      for (const message of [{ mode: "throw" }, { x: fp64([1]), mode: "nan" }]) {
        const full = anyOf(message).value;
        assert.ok(Buffer.isBuffer(full));
        throwsInvalid(() => inputs.decodeAny({ type_url: INPUTS_URL, value: full.subarray(0, full.length - 1) }, "inputs"), /^inputs: cannot decode tesseract\.testing\.polynomial\.v1\.Inputs: (x|params|blocks|mode)\b.*: (length \d+ runs past the end of its message|truncated)/);
      }
    });

    it("names the map path of a bad tensor inside a map entry", () => {
      const bad = { x: fp64([1]), params: { ok: fp64([1]), "a.b": { datatype: DataType.DATA_TYPE_FP64, shape: [2], data: Buffer.alloc(8) } } };
      throwsInvalid(() => inputs.decodeAny(anyOf(bad), "inputs"), /^params\.\{a\.b\}: data has 8 bytes, expected 16 \(shape \[2\] of DATA_TYPE_FP64, 8 bytes each\)$/);
      // A "}" in the key is escaped in the message, so the path can be pasted back.
      const braces = { params: { "x}y": { datatype: 99, shape: [1], data: Buffer.alloc(8) } } };
      throwsInvalid(() => inputs.decodeAny(anyOf(braces), "inputs"), /^params\.\{x\\\}y\}: unsupported datatype 99 \(not a tesseract\.v1\.DataType\)/);
    });

    it("names the path of a bad tensor inside a repeated message", () => {
      const bad = { blocks: [{ w: fp64([1]) }, { w: { datatype: DataType.DATA_TYPE_FP32, shape: [2, 2], data: Buffer.alloc(12) } }] };
      throwsInvalid(() => inputs.decodeAny(anyOf(bad), "inputs"), /^blocks\.\[1\]\.w: data has 12 bytes, expected 16 \(shape \[2, 2\] of DATA_TYPE_FP32, 4 bytes each\)$/);
    });

    it("rejects a wrong byte length on a top-level tensor", () => {
      const tooLong = { x: { datatype: DataType.DATA_TYPE_FP64, shape: [3], data: Buffer.alloc(25) } };
      throwsInvalid(() => inputs.decodeAny(anyOf(tooLong), "inputs"), /^x: data has 25 bytes, expected 24 \(shape \[3\] of DATA_TYPE_FP64, 8 bytes each\)$/);
      const tooShort = { counts: { datatype: DataType.DATA_TYPE_INT32, shape: [2, 3], data: Buffer.alloc(20) } };
      throwsInvalid(() => inputs.decodeAny(anyOf(tooShort), "inputs"), /^counts: data has 20 bytes, expected 24/);
      // Also in abstract mode: data that is present must be complete.
      throwsInvalid(() => inputs.decodeAny(anyOf(tooShort), "inputs", { abstract: true }), /^counts: data has 20 bytes, expected 24/);
    });

    it("applies decode limits, naming the path", () => {
      const big = { x: { datatype: DataType.DATA_TYPE_FP64, shape: [1000, 1000], data: Buffer.alloc(0) } };
      throwsInvalid(() => inputs.decodeAny(anyOf(big), "inputs", { limits: { maxElements: 1000 } }), /^x: shape \[1000, 1000\] has more than 1000 elements, the limit$/);
    });
  });

  describe("encodeAny", () => {
    it("round-trips an output tree through Any", () => {
      const tree = {
        f: ndarray(Float64Array.of(1.5, -2, Math.PI), [3]),
        named: { "a.b": ndarray(Float32Array.of(1, 2, 3, 4), [2, 2]), "": ndarray(Float64Array.of(5), []) },
        g: ndarray(Float64Array.of(Math.E), []),
        count_out: ndarray(Int32Array.of(3), []),
      };
      const any = outputs.encodeAny(tree);
      assert.equal(any.type_url, OUTPUTS_URL);
      assert.ok(any.value instanceof Uint8Array);
      const back = outputs.decodeAny(any, "outputs");
      assertArray(back.f, Float64Array, [3], [1.5, -2, Math.PI]);
      const named = back.named as Record<string, unknown>;
      assert.deepEqual(Object.keys(named).sort(), ["", "a.b"]);
      assertArray(named["a.b"], Float32Array, [2, 2], [1, 2, 3, 4]);
      assertArray(named[""], Float64Array, [], [5]);
      assertArray(back.g, Float64Array, [], [Math.E]);
      assertArray(back.count_out, Int32Array, [], [3]);
    });

    it("round-trips an input tree with strings and repeated messages, and omits unset leaves", () => {
      const tree = inputs.decodeAny(anyOf(fullMessage()), "inputs");
      const back = inputs.decodeAny(inputs.encodeAny(tree), "inputs");
      assertArray(back.x, Float64Array, [3], [0.5, -1.25, 3]);
      assertArray((back.params as Record<string, unknown>)["a.b"], Float64Array, [2, 2], [1, 2, 3, 4]);
      assertArray((back.blocks as { w: unknown }[])[1]!.w, Float32Array, [3], [3, 4, 5]);
      assertArray(back.counts, Int32Array, [3], [7, -8, 9]);
      assert.equal(back.mode, "nan");
      const sparse = inputs.decodeAny(inputs.encodeAny({ x: ndarray(Float64Array.of(1), [1]) }), "inputs");
      assert.equal(sparse.y, undefined);
      assert.deepEqual(sparse.blocks, []);
    });

    it("encodes a strided view in row-major order", () => {
      const base = ndarray(Float64Array.of(1, 2, 3, 4, 5, 6), [2, 3]);
      const back = outputs.decodeAny(outputs.encodeAny({ f: base.transpose(1, 0) }), "outputs");
      assertArray(back.f, Float64Array, [3, 2], [1, 4, 2, 5, 3, 6]);
    });

    it("blames the Tesseract (INTERNAL) for a non-ndarray where a Tensor is expected, naming the path", () => {
      throwsCode(() => outputs.encodeAny({ f: [1, 2, 3] }), Code.INTERNAL, /^outputs f: expected an ndarray, got a plain array: make one with ndarray\(data, shape\)$/);
      throwsCode(() => outputs.encodeAny({ f: Float64Array.of(1, 2, 3) }), Code.INTERNAL, /^outputs f: expected an ndarray, got a bare Float64Array: make one with ndarray\(data, shape\)$/);
      throwsCode(() => outputs.encodeAny({ g: 2 }), Code.INTERNAL, /^outputs g: expected an ndarray, got number$/);
      throwsCode(() => outputs.encodeAny({ named: { ok: ndarray(Float64Array.of(1), [1]), "a.b": "x" } }), Code.INTERNAL, /^outputs named\.\{a\.b\}: expected an ndarray, got string$/);
      throwsCode(() => inputs.encodeAny({ blocks: [{ w: ndarray(Float64Array.of(1), [1]) }, { w: {} }] }), Code.INTERNAL, /^outputs blocks\.\[1\]\.w: expected an ndarray/);
      throwsCode(() => inputs.encodeAny({ blocks: [7] }), Code.INTERNAL, /^outputs blocks\.\[0\]: expected an object for tesseract\.testing\.polynomial\.v1\.Block$/);
      throwsCode(() => outputs.encodeAny(null), Code.INTERNAL, /^outputs \(root\): expected an object/);
      throwsCode(() => inputs.encodeAny({ mode: 5 }), Code.INTERNAL, /^outputs do not match tesseract\.testing\.polynomial\.v1\.Inputs: mode: string expected$/);
      // Encoding inputs (the CLI's JSON), the caller is to blame.
      throwsCode(() => inputs.encodeAny({ mode: 5 }, "inputs"), Code.INVALID_ARGUMENT, /^inputs do not match tesseract\.testing\.polynomial\.v1\.Inputs: mode: string expected$/);
    });
  });

  describe("differentiable paths", () => {
    it("lists the differentiable patterns in declaration order", () => {
      assert.deepEqual(inputs.differentiablePatternNames(), ["x", "y", "params.{}", "blocks.[].w"]);
      assert.deepEqual(outputs.differentiablePatternNames(), ["f", "named.{}", "g"]);
    });

    it("expands maps and lists to concrete paths present in a tree", () => {
      const tree = inputs.decodeAny(anyOf(fullMessage()), "inputs");
      assert.deepEqual(inputs.differentiablePaths(tree), ["x", "y", "params.{a.b}", "params.{with space}", "params.{{br\\}ace}", "blocks.[0].w", "blocks.[1].w"]);
    });

    it("leaves out unset leaves and empty containers", () => {
      const tree = inputs.decodeAny(anyOf({ x: fp64([1]), blocks: [{}, { w: fp64([2]) }] }), "inputs");
      assert.deepEqual(inputs.differentiablePaths(tree), ["x", "blocks.[1].w"]);
    });
  });

  describe("resolveDifferentiable / checkDifferentiable", () => {
    const tree = inputs.decodeAny(
      anyOf({ x: fp64([1, 2, 3]), y: fp64([0.5], []), params: { "a.b": fp64([1, 2]), a: fp64([3]) }, blocks: [{ w: fp64([4]) }, { w: fp64([5, 6]) }], counts: int32([1]), mode: "" }),
      "inputs",
    );
    const available = "x, y, params.{a.b}, params.{a}, blocks.[0].w, blocks.[1].w";
    const resolve = (paths: string[], t: unknown = tree) => inputs.resolveDifferentiable(t, paths, "jac_inputs", "input");
    /** The message must name the offending path and list every available differentiable path. */
    const rejects = (paths: string[], bad: string, t: unknown = tree, list = available) =>
      throwsInvalid(() => resolve(paths, t), /^jac_inputs: /, lit(`"${bad}"`), lit(`differentiable input paths: ${list}`));

    it("resolves a concrete path to its leaf (same array, not a copy)", () => {
      const [leaf, ...rest] = resolve(["x"]);
      assert.equal(rest.length, 0);
      assert.equal(leaf!.path, "x");
      assert.deepEqual(leaf!.segments, [{ kind: "field", name: "x" }]);
      assert.equal(leaf!.array, tree.x);
    });

    it("resolves map keys with dots and list indices", () => {
      const leaves = resolve(["params.{a.b}", "blocks.[1].w", "y"]);
      assert.deepEqual(leaves.map((l) => l.path), ["params.{a.b}", "blocks.[1].w", "y"]);
      assert.equal(leaves[0]!.array, (tree.params as Record<string, unknown>)["a.b"]);
      assert.equal(leaves[1]!.array, (tree.blocks as { w: unknown }[])[1]!.w);
      assert.deepEqual(leaves[0]!.segments, [{ kind: "field", name: "params" }, { kind: "key", key: "a.b" }]);
    });

    it("expands a pattern to every match, in tree order", () => {
      assert.deepEqual(resolve(["params.{}"]).map((l) => l.path), ["params.{a.b}", "params.{a}"]);
      assert.deepEqual(resolve(["blocks.[].w", "x"]).map((l) => l.path), ["blocks.[0].w", "blocks.[1].w", "x"]);
    });

    it("resolves output paths on an output tree", () => {
      const out = { f: ndarray(Float64Array.of(1), [1]), named: { k: ndarray(Float64Array.of(2), [1]) }, g: ndarray(Float64Array.of(3), []) };
      const leaves = outputs.resolveDifferentiable(out, ["g", "named.{}"], "jac_outputs", "output");
      assert.deepEqual(leaves.map((l) => l.path), ["g", "named.{k}"]);
    });

    it("rejects an unknown field", () => {
      rejects(["z"], "z");
      rejects(["x", "nope.deeper"], "nope.deeper");
      rejects(["constructor"], "constructor"); // never a prototype property
      throwsInvalid(() => resolve(["z"]), /input path "z" does not exist/);
    });

    it("rejects a non-differentiable field", () => {
      rejects(["counts"], "counts");
      rejects(["mode"], "mode");
      throwsInvalid(() => resolve(["counts"]), /input path "counts" is not differentiable/);
    });

    it("rejects a path that is not a tensor (a message, list or map itself, or below a tensor)", () => {
      rejects(["blocks"], "blocks");
      rejects(["blocks.[0]"], "blocks.[0]");
      rejects(["params"], "params");
      rejects(["x.y"], "x.y");
    });

    it("rejects a missing map key", () => {
      rejects(["params.{nope}"], "params.{nope}");
      throwsInvalid(() => resolve(["params.{nope}"]), /input path "params\.\{nope\}" does not exist in the inputs/);
    });

    it("tells a differentiable field left unset from one that does not exist: its value must be sent", () => {
      const { y: _, ...withoutY } = tree;
      rejects(["y"], "y", withoutY, "x, params.{a.b}, params.{a}, blocks.[0].w, blocks.[1].w");
      throwsInvalid(() => resolve(["y"], withoutY), /^jac_inputs: input path "y" is a differentiable field the inputs leave unset: send its value to differentiate at it/);
      // Below an unset message too; an element or key the caller chose still "does not exist".
      throwsInvalid(() => resolve(["blocks.[2].w"]), /input path "blocks\.\[2\]\.w" does not exist in the inputs/);
    });

    it("rejects an out-of-range index", () => {
      rejects(["blocks.[7].w"], "blocks.[7].w");
      rejects(["blocks.[2].w"], "blocks.[2].w");
    });

    it("rejects a pattern that matches nothing, listing what there is", () => {
      const bare = inputs.decodeAny(anyOf({ x: fp64([1]) }), "inputs");
      rejects(["params.{}"], "params.{}", bare, "x");
      rejects(["blocks.[].w"], "blocks.[].w", bare, "x");
      // A leaf that is unset (a block without w) is not a match either.
      const unsetW = inputs.decodeAny(anyOf({ blocks: [{}] }), "inputs");
      rejects(["blocks.[].w"], "blocks.[].w", unsetW, "(none)");
      rejects(["blocks.[0].w"], "blocks.[0].w", unsetW, "(none)");
    });

    it("rejects a path listed twice, directly or through a pattern", () => {
      throwsInvalid(() => resolve(["x", "x"]), /^jac_inputs: input path "x" is listed more than once/);
      throwsInvalid(() => resolve(["params.{a}", "params.{}"]), /^jac_inputs: input path "params\.\{a\}" is listed more than once/);
      throwsInvalid(() => resolve(["blocks.[].w", "blocks.[1].w"]), /"blocks\.\[1\]\.w" is listed more than once/);
    });

    it("rejects an empty list, listing the available paths", () => {
      throwsInvalid(() => resolve([]), /^jac_inputs is empty: name at least one differentiable input path; available: x, y, params\.\{a\.b\}, params\.\{a\}, blocks\.\[0\]\.w, blocks\.\[1\]\.w$/);
      throwsInvalid(() => outputs.checkDifferentiable([], "jvp_outputs", "output"), /^jvp_outputs is empty: .*available: f, named\.\{\}, g$/);
    });

    it("rejects a path with a syntax error, naming the path and where", () => {
      for (const [bad, pos] of [["x..y", 2], ["x.", 2], ["[", 0], ["blocks.[01].w", 7], ["x y", 1]] as const) {
        throwsInvalid(() => resolve(["x", bad]), lit(JSON.stringify(bad)), new RegExp(`at position ${pos}\\b`));
      }
    });

    it("names the request field and the available paths on a syntax error too", () => {
      rejects(["x..y"], "x..y");
    });

    it("checks paths before a tree exists against the patterns", () => {
      const segments = outputs.checkDifferentiable(["f", "named.{k}", "named.{}"], "jac_outputs", "output");
      assert.deepEqual(segments, [
        [{ kind: "field", name: "f" }],
        [{ kind: "field", name: "named" }, { kind: "key", key: "k" }],
        [{ kind: "field", name: "named" }, { kind: "anyKey" }],
      ]);
      for (const bad of ["count_out", "h", "named", "f.[0]"]) {
        throwsInvalid(
          () => outputs.checkDifferentiable([bad], "jac_outputs", "output"),
          lit(`jac_outputs: output path "${bad}" is not a differentiable path; differentiable output paths: f, named.{}, g`),
        );
      }
    });
  });
});

describe("schema: the differentiable option", () => {
  it("on a field that is no Tensor (or map or list of them) is refused at load, naming it (it was ignored: no path differentiable)", () => {
    const root = (field: string) => loadRootFromText(`syntax = "proto3";\npackage t.v1;\nimport "tesseract/v1/tensor.proto";\nmessage Part { double w = 1; }\nmessage Inputs { ${field} }\nmessage Outputs { tesseract.v1.Tensor f = 1; }\n`);
    assert.throws(() => new TesseractSchema(root("double x = 1 [(tesseract.v1.differentiable) = true];"), "t.v1.Inputs", "t.v1.Outputs"), /^Error: t\.v1\.Inputs\.x is marked \(tesseract\.v1\.differentiable\), which only a tesseract\.v1\.Tensor field \(or a map or list of them\) can be; this field is double$/);
    assert.throws(() => new TesseractSchema(root("repeated Part parts = 1 [(tesseract.v1.differentiable) = true];"), "t.v1.Inputs", "t.v1.Outputs"), /this field is a list of Part$/);
    assert.deepEqual(new TesseractSchema(root("repeated tesseract.v1.Tensor xs = 1 [(tesseract.v1.differentiable) = true];"), "t.v1.Inputs", "t.v1.Outputs").inputs.differentiablePatternNames(), ["xs.[]"]);
  });

  it("a message that marks no field: a path asked of it says so and where the option goes (it was 'differentiable input paths: (none)')", () => {
    const schema = new TesseractSchema(loadRootFromText(`syntax = "proto3";\npackage t.v1;\nimport "tesseract/v1/tensor.proto";\nmessage Inputs { tesseract.v1.Tensor x = 1; }\nmessage Outputs { tesseract.v1.Tensor f = 1; }\n`), "t.v1.Inputs", "t.v1.Outputs");
    const none = (type: string) => `(none: ${type} marks no field differentiable; a .proto marks a Tensor field [(tesseract.v1.differentiable) = true])`;
    const exactly = (message: string) => new RegExp(`^${lit(message).source}$`);
    throwsInvalid(() => schema.inputs.checkDifferentiable(["x"], "jac_inputs", "input"), exactly(`jac_inputs: input path "x" is not a differentiable path; differentiable input paths: ${none("t.v1.Inputs")}`));
    throwsInvalid(() => schema.outputs.checkDifferentiable([], "jac_outputs", "output"), exactly(`jac_outputs is empty: name at least one differentiable output path; available: ${none("t.v1.Outputs")}`));
    const tree = { x: ndarray(Float64Array.of(1), [1]) };
    throwsInvalid(() => schema.inputs.checkDifferentiable(["x"], "jac_inputs", "input", tree), exactly(`jac_inputs: input path "x" is not differentiable; differentiable input paths: ${none("t.v1.Inputs")}`));
  });
});

describe("schema: fields named like Object.prototype's members", () => {
  const root = loadRootFromText(
    `syntax = "proto3";\npackage t.v1;\nimport "tesseract/v1/tensor.proto";\n` +
      `message Inputs { tesseract.v1.Tensor constructor = 1 [(tesseract.v1.differentiable) = true]; tesseract.v1.Tensor toString = 2 [(tesseract.v1.differentiable) = true]; tesseract.v1.Tensor data = 3; }\n` +
      `message Outputs { tesseract.v1.Tensor toString = 1 [(tesseract.v1.differentiable) = true]; tesseract.v1.Tensor valueOf = 2 [(tesseract.v1.differentiable) = true]; }\n`,
  );
  const schema = new TesseractSchema(root, "t.v1.Inputs", "t.v1.Outputs");
  const anyOf = (message: Record<string, unknown>): AnyMessage => ({ type_url: "type.googleapis.com/t.v1.Inputs", value: Buffer.from(schema.inputs.type.encode(message).finish()) });

  it("decodes them set and unset, never reading the prototype's functions (an unset constructor was a tensor of no data, a set toString INTERNAL)", () => {
    const onlyData = schema.inputs.decodeAny(anyOf({ data: fp64([1]) }), "inputs");
    assert.equal(onlyData.constructor, undefined);
    assert.equal(onlyData.toString, undefined);
    assertArray(onlyData.data, Float64Array, [1], [1]);
    const both = schema.inputs.decodeAny(anyOf({ constructor: fp64([2]), toString: fp64([3, 4]) }), "inputs");
    assertArray(both.constructor, Float64Array, [1], [2]);
    assertArray(both.toString, Float64Array, [2], [3, 4]);
    assert.deepEqual(schema.inputs.differentiablePaths(both), ["constructor", "toString"]);
  });

  it("a field named __proto__ is refused at load, naming the file (protobufjs dropped it: the Tesseract was served without it)", () => {
    const file = path.join(__dirname, "../../test/fixtures/keyed/proto-named.proto");
    assert.throws(() => loadRoot([file]), { message: `${file} declares something named __proto__, which this server cannot hold (its parser drops it): rename it` });
    // Named in comments and strings only, it is no declaration.
    assert.doesNotThrow(() => loadRoot([path.join(__dirname, "../../test/fixtures/keyed/documents.proto")]));
  });

  it("a type no imported file declares is named with its file and the import to add (protobufjs named neither)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-unresolved-"));
    try {
      const write = (name: string, body: string) => {
        fs.writeFileSync(path.join(dir, name), `syntax = "proto3";\npackage acme.v1;\n${body}\n`);
        return path.join(dir, name);
      };
      const noImport = write("no-import.proto", "message Inputs { tesseract.v1.Tensor x = 1; }\nmessage Outputs { tesseract.v1.Tensor y = 1; }");
      assert.throws(() => loadRoot([noImport]), {
        message: `acme.v1.Inputs (${noImport}) uses the type tesseract.v1.Tensor, which no file it imports declares: add import "tesseract/v1/tensor.proto"; to that file (the contract's files are always on the import path)`,
      });
      const misspelt = write("misspelt.proto", 'import "tesseract/v1/tensor.proto";\nmessage Inputs { Mesh mesh = 1; }');
      assert.throws(() => loadRoot([misspelt]), {
        message: `acme.v1.Inputs (${misspelt}) uses the type Mesh, which no file it imports declares: import the .proto file that declares it, or correct the name (a type of another package by its full name, package included)`,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("encodes outputs that leave them out, and decodes them back unset", () => {
    const any = schema.outputs.encodeAny({ valueOf: ndarray(Float64Array.of(5), [1]) });
    const back = schema.outputs.decodeAny(any, "outputs");
    assert.equal(back.toString, undefined);
    assertArray(back.valueOf, Float64Array, [1], [5]);
  });
});

describe("schema: maps keyed by bool", () => {
  const root = loadRoot([path.join(__dirname, "../../test/fixtures/keyed/keyed.proto")]);
  const schema = new TesseractSchema(root, "tesseract.testing.keyed.v1.Inputs", "tesseract.testing.keyed.v1.Outputs");
  const one = (v: number) => ndarray(Float64Array.of(v), [1]);

  it("encodes a false key as false: outputs, and inputs from tesseract-core's JSON (protobufjs wrote the string \"false\" as true, so one entry overwrote the other)", () => {
    const outputs = schema.outputs.decodeAny(schema.outputs.encodeAny({ by_bool: { true: one(1), false: one(2) } }), "outputs");
    const byBool = outputs.by_bool as Record<string, NdArray<Float64Array>>;
    assert.deepEqual(Object.keys(byBool).sort(), ["false", "true"]);
    assertArray(byBool.false, Float64Array, [1], [2]);
    assertArray(byBool.true, Float64Array, [1], [1]);
    const array = (v: number) => ({ shape: [1], dtype: "float64", data: { buffer: [v], encoding: "json" } });
    const inputs = schema.inputs.decodeAny(inputsAny(schema.inputs, { by_bool: { false: array(3), true: array(4) } }), "inputs");
    assertArray((inputs.by_bool as Record<string, unknown>).false, Float64Array, [1], [3]);
    assertArray((inputs.by_bool as Record<string, unknown>).true, Float64Array, [1], [4]);
  });
});

describe("schema: well-known types", () => {
  const root = loadRoot([path.join(__dirname, "../../test/fixtures/keyed/documents.proto")]);
  const schema = new TesseractSchema(root, "tesseract.testing.documents.v1.Inputs", "tesseract.testing.documents.v1.Outputs");

  it("have the field names of their .proto files (protobufjs' bundled Value named number_value numberValue: in apply's inputs and the REST API)", () => {
    assert.deepEqual(root.lookupType("google.protobuf.Value").fieldsArray.map((f) => f.name), ["null_value", "number_value", "string_value", "bool_value", "struct_value", "list_value"]);
    const json = { meta: { fields: { a: { number_value: 1.5 }, b: { list_value: { values: [{ string_value: "x" }] } } } }, when: { seconds: 3, nanos: 4 } };
    const tree = schema.inputs.decodeAny(inputsAny(schema.inputs, json), "inputs");
    assert.deepEqual(JSON.parse(JSON.stringify(tree)), json);
  });
});

describe("schema: bundled meshstats proto", () => {
  const root = loadRoot([path.join(PROTO_DIR, "tesseract/examples/meshstats/v1/meshstats.proto")]);
  const schema = new TesseractSchema(root, "tesseract.examples.meshstats.v1.Inputs", "tesseract.examples.meshstats.v1.Outputs");

  it("finds mesh.points as the one differentiable input, through a nested message", () => {
    assert.deepEqual(schema.inputs.differentiablePatternNames(), ["mesh.points"]);
    assert.deepEqual(schema.outputs.differentiablePatternNames(), ["statistics.first_point_coordinates", "statistics.barycenter"]);
  });

  it("decodes a mesh with int64 scalars, an enum, and maps of tensors", () => {
    const type = schema.inputs.type;
    const message = {
      mesh: {
        n_points: 2,
        n_cells: 1,
        points: fp64([0, 0, 0, 1, 2, 3], [2, 3]),
        num_points_per_cell: fp64([2]),
        cell_connectivity: int32([0, 1]),
        cell_data: { "temperature.avg": fp64([20], [1, 1]) },
      },
      fd_algorithm: 2,
    };
    const tree = schema.inputs.decodeAny({ type_url: schema.inputs.typeUrl, value: type.encode(message).finish() }, "inputs");
    const mesh = tree.mesh as Record<string, unknown>;
    assert.equal(mesh.n_points, 2);
    assert.equal(mesh.n_cells, 1);
    assert.equal(tree.fd_algorithm, 2);
    assertArray(mesh.points, Float64Array, [2, 3], [0, 0, 0, 1, 2, 3]);
    assertArray(mesh.cell_connectivity, Int32Array, [2], [0, 1]);
    assertArray((mesh.cell_data as Record<string, unknown>)["temperature.avg"], Float64Array, [1, 1], [20]);
    assert.deepEqual({ ...(mesh.point_data as object) }, {});
    assert.deepEqual(schema.inputs.differentiablePaths(tree), ["mesh.points"]);
    const [leaf] = schema.inputs.resolveDifferentiable(tree, ["mesh.points"], "jac_inputs", "input");
    assert.equal(leaf!.array, mesh.points);
    throwsInvalid(
      () => schema.inputs.resolveDifferentiable(tree, ["mesh.cell_data.{temperature.avg}"], "jac_inputs", "input"),
      /^jac_inputs: input path "mesh\.cell_data\.\{temperature\.avg\}" is not differentiable; differentiable input paths: mesh\.points$/,
    );
    throwsInvalid(() => schema.inputs.decodeAny({ type_url: schema.inputs.typeUrl, value: type.encode({ mesh: { points: fp64([1, 2], [3]) } }).finish() }, "inputs"), /^mesh\.points: data has 16 bytes, expected 24/);
  });
});
