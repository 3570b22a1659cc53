import { strict as assert } from "node:assert";
import ndarray, { type NdArray } from "ndarray";
import protobuf from "protobufjs";
import {
  BoolArray,
  DataType,
  DEFAULT_LIMITS,
  DEFAULT_MAX_ELEMENTS,
  TensorMessage,
  TypedArray,
  dataTypeName,
  dataTypeOfArray,
  decodeAbstractTensor,
  decodeTensor,
  encodeTensor,
  isNdArray,
  itemSize,
  normalizeShape,
  toFloat64,
} from "../common/tensor-codec";

const D = DataType;

/** Row-major values of an ndarray, read through get() so strides are the ndarray's own business. */
function values(a: NdArray<any>): unknown[] {
  const out: unknown[] = [];
  const idx = new Array<number>(a.shape.length).fill(0);
  const n = a.shape.reduce((p, d) => p * d, 1);
  for (let k = 0; k < n; k++) {
    out.push(a.get(...idx));
    for (let j = idx.length - 1; j >= 0 && ++idx[j] === a.shape[j]; j--) idx[j] = 0;
  }
  return out;
}

function bytesOf(arr: ArrayBufferView): number[] {
  return [...new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength)];
}

/** Asserts `fn` throws INVALID_ARGUMENT with a message matching `re`. */
function rejects(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: any) => {
    assert.equal(err.code, 3, `code of ${err}`);
    assert.match(err.message, re);
    return true;
  });
}

const samples: Array<{ dt: DataType; arr: TypedArray }> = [
  { dt: D.DATA_TYPE_BOOL, arr: new BoolArray([0, 1, 1, 0, 1, 0]) },
  { dt: D.DATA_TYPE_UINT8, arr: new Uint8Array([0, 1, 127, 128, 254, 255]) },
  { dt: D.DATA_TYPE_UINT16, arr: new Uint16Array([0, 1, 0x0102, 0x8000, 0xfffe, 0xffff]) },
  { dt: D.DATA_TYPE_UINT32, arr: new Uint32Array([0, 1, 0x01020304, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1]) },
  { dt: D.DATA_TYPE_UINT64, arr: new BigUint64Array([0n, 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 2n, 2n ** 64n - 1n]) },
  { dt: D.DATA_TYPE_INT8, arr: new Int8Array([-128, -1, 0, 1, 2, 127]) },
  { dt: D.DATA_TYPE_INT16, arr: new Int16Array([-32768, -1, 0, 1, 0x0102, 32767]) },
  { dt: D.DATA_TYPE_INT32, arr: new Int32Array([-(2 ** 31), -2, -1, 0, 0x01020304, 2 ** 31 - 1]) },
  { dt: D.DATA_TYPE_INT64, arr: new BigInt64Array([-(2n ** 63n), -(2n ** 53n) - 1n, -1n, 0n, 2n ** 53n + 1n, 2n ** 63n - 1n]) },
  { dt: D.DATA_TYPE_FP32, arr: new Float32Array([NaN, Infinity, -Infinity, -0, 1.5, Math.fround(1e-40)]) },
  { dt: D.DATA_TYPE_FP64, arr: new Float64Array([NaN, Infinity, -Infinity, -0, 1 / 3, 5e-324]) },
];
const multiByte = samples.filter((s) => s.arr.BYTES_PER_ELEMENT > 1);

describe("tensor codec", () => {
  describe("round trip", () => {
    for (const { dt, arr } of samples) {
      it(`${dataTypeName(dt)}, shape [2, 3]`, () => {
        const wire = encodeTensor(ndarray(arr, [2, 3]), dt);
        assert.equal(wire.datatype, dt);
        assert.deepEqual(wire.shape, [2, 3]);
        // The wire bytes are the little-endian host bytes, exactly prod(shape) × itemsize of them.
        assert.deepEqual(bytesOf(wire.data), bytesOf(arr));
        assert.equal(wire.data.byteLength, 6 * itemSize(dt));
        const back = decodeTensor(wire, "t");
        // The class says the datatype: BOOL decodes to a BoolArray, and encodes back as BOOL (it became UINT8).
        assert.equal(back.data.constructor, arr.constructor);
        assert.equal(encodeTensor(back).datatype, dt);
        assert.deepEqual(back.shape, [2, 3]);
        // deepEqual uses Object.is: NaN equals NaN and -0 differs from 0.
        assert.deepEqual([...back.data], [...arr]);
      });
    }

    it("writes little-endian bytes", () => {
      assert.deepEqual([...encodeTensor(ndarray(new Float64Array([1]), [1])).data], [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
      assert.deepEqual([...encodeTensor(ndarray(new Int32Array([-2]), [1])).data], [0xfe, 0xff, 0xff, 0xff]);
      assert.deepEqual([...encodeTensor(ndarray(new Uint16Array([0x0102]), [1])).data], [0x02, 0x01]);
      assert.deepEqual([...encodeTensor(ndarray(new BigInt64Array([-2n]), [1])).data], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    });

    it("normalizes anything encoded as BOOL to 0/1 (NaN is true, as in NumPy)", () => {
      const wire = encodeTensor(ndarray(new Uint8Array([0, 2, 255, 1]), [4]), D.DATA_TYPE_BOOL);
      assert.deepEqual([...wire.data], [0, 1, 1, 1]);
      const fromFloats = encodeTensor(ndarray(new Float64Array([0, -0, 0.5, NaN, -3]), [5]), D.DATA_TYPE_BOOL);
      assert.deepEqual([...fromFloats.data], [0, 0, 1, 1, 1]);
      const fromBools = encodeTensor(ndarray([true, false, true] as any, [3]), D.DATA_TYPE_BOOL);
      assert.deepEqual([...fromBools.data], [1, 0, 1]);
      assert.deepEqual([...decodeTensor(wire, "b").data], [0, 1, 1, 1]);
    });

    it("scalars: shape [] is one element", () => {
      const wire = encodeTensor(ndarray(new Float64Array([3.5]), []));
      assert.deepEqual(wire.shape, []);
      assert.equal(wire.datatype, D.DATA_TYPE_FP64);
      assert.equal(wire.data.byteLength, 8);
      const back = decodeTensor(wire, "s");
      assert.deepEqual(back.shape, []);
      assert.equal(back.get(), 3.5);
      // A 0-d view into a bigger array (pick of every axis) encodes its one element.
      const picked = ndarray(new Int16Array([1, 2, 3, 4]), [2, 2]).pick(1, 0);
      assert.deepEqual(picked.shape, []);
      const pw = encodeTensor(picked);
      assert.deepEqual(pw.shape, []);
      assert.deepEqual([...decodeTensor(pw, "p").data], [3]);
      const big = encodeTensor(ndarray(new BigUint64Array([2n ** 64n - 1n]), []));
      assert.equal(decodeTensor(big, "u").get(), 2n ** 64n - 1n);
    });

    it("empty dimensions round-trip", () => {
      for (const shape of [[0], [0, 3], [3, 0], [2, 0, 5]]) {
        const wire = encodeTensor(ndarray(new Float32Array(0), shape));
        assert.deepEqual(wire.shape, shape);
        assert.equal(wire.data.byteLength, 0);
        const back = decodeTensor(wire, "e");
        assert.deepEqual(back.shape, shape);
        assert.equal(back.data.length, 0);
        assert.ok(back.data instanceof Float32Array);
        // Zero elements and no data is a concrete (empty) tensor, not an abstract one.
        assert.ok(decodeAbstractTensor(wire, "e").array);
      }
    });

    it("a big array (2^20 FP64 elements)", () => {
      const n = 2 ** 20;
      const arr = new Float64Array(n);
      for (let i = 0; i < n; i++) arr[i] = Math.sin(i) * 1e6;
      const wire = encodeTensor(ndarray(arr, [1024, 1024]));
      assert.equal(wire.data.byteLength, 8 * n);
      const back = decodeTensor(wire, "big");
      assert.deepEqual(back.shape, [1024, 1024]);
      assert.deepEqual(back.data, arr);
      // Transposed, so that the strided path runs at this size too.
      const tw = encodeTensor(ndarray(arr, [1024, 1024]).transpose(1, 0));
      const t = decodeTensor(tw, "big");
      assert.equal(t.get(5, 700), arr[700 * 1024 + 5]);
      assert.equal(t.get(1023, 1), arr[1 * 1024 + 1023]);
    });
  });

  describe("buffers at odd byte offsets", () => {
    for (const { dt, arr } of multiByte) {
      it(`${dataTypeName(dt)} at byte offsets 1, 3 and 5`, () => {
        const bytes = bytesOf(arr);
        for (const offset of [1, 3, 5]) {
          const big = Buffer.alloc(offset + bytes.length + 7, 0xaa);
          Buffer.from(bytes).copy(big, offset);
          const data = big.subarray(offset, offset + bytes.length);
          assert.notEqual(data.byteOffset % arr.BYTES_PER_ELEMENT, 0, "the test really is misaligned");
          const back = decodeTensor({ datatype: dt, shape: [3, 2], data }, "odd");
          assert.deepEqual([...back.data], [...arr]);
        }
      });
    }

    it("decoded arrays are copies: writing to them leaves the message untouched", () => {
      const data = Buffer.alloc(3 + 16);
      data.writeDoubleLE(1.25, 3);
      data.writeDoubleLE(2.5, 11);
      const msg = { datatype: D.DATA_TYPE_FP64, shape: [2], data: data.subarray(3) };
      const a = decodeTensor(msg, "x");
      const b = decodeTensor(msg, "x");
      a.set(0, 99);
      assert.equal(b.get(0), 1.25);
      assert.equal(data.readDoubleLE(3), 1.25);
      // Owns an exactly sized buffer, e.g. safe to transfer to a worker.
      assert.equal(a.data.byteOffset, 0);
      assert.equal(a.data.buffer.byteLength, 16);
    });

    it("decodes what protobufjs itself decoded (Long shapes, Buffer slices at odd offsets)", () => {
      const root = protobuf.parse(
        `syntax = "proto3"; package tesseract.v1;
         enum DataType { DATA_TYPE_UNSPECIFIED = 0; DATA_TYPE_BOOL = 1; DATA_TYPE_UINT8 = 2; DATA_TYPE_UINT16 = 3;
           DATA_TYPE_UINT32 = 4; DATA_TYPE_UINT64 = 5; DATA_TYPE_INT8 = 6; DATA_TYPE_INT16 = 7; DATA_TYPE_INT32 = 8;
           DATA_TYPE_INT64 = 9; DATA_TYPE_FP32 = 10; DATA_TYPE_FP64 = 11; }
         message Tensor { DataType datatype = 1; repeated int64 shape = 2; bytes data = 3; }`,
        { keepCase: true },
      ).root;
      const Tensor = root.lookupType("tesseract.v1.Tensor");
      for (const { dt, arr } of samples) {
        const wire = encodeTensor(ndarray(arr, [3, 2]), dt);
        const encoded = Tensor.encode(Tensor.fromObject(wire)).finish();
        const framed = Buffer.concat([Buffer.from([9, 9, 9]), Buffer.from(encoded)]);
        const msg = Tensor.decode(framed.subarray(3)) as unknown as TensorMessage;
        const back = decodeTensor(msg, "pb");
        assert.deepEqual(back.shape, [3, 2]);
        assert.deepEqual([...back.data], [...arr]);
      }
    });
  });

  describe("non-contiguous views encode row-major", () => {
    const base = () => ndarray(new Float64Array([0, 1, 2, 3, 4, 5]), [2, 3]);
    const cases: Array<[string, () => NdArray<any>, number[], number[]]> = [
      ["transpose", () => base().transpose(1, 0), [3, 2], [0, 3, 1, 4, 2, 5]],
      ["step(-1) on 1-D", () => ndarray(new Float64Array([1, 2, 3, 4]), [4]).step(-1), [4], [4, 3, 2, 1]],
      ["step(1, -1)", () => base().step(1, -1), [2, 3], [2, 1, 0, 5, 4, 3]],
      ["step(-1, 2)", () => base().step(-1, 2), [2, 2], [3, 5, 0, 2]],
      ["pick(null, 1) (a column)", () => base().pick(null, 1), [2], [1, 4]],
      ["pick(1) (a row at an offset)", () => base().pick(1), [3], [3, 4, 5]],
      ["hi(2, 2).lo(0, 1)", () => base().hi(2, 2).lo(0, 1), [2, 1], [1, 4]],
      ["plain-array data", () => ndarray([0, 1, 2, 3, 4, 5], [2, 3]).transpose(1, 0), [3, 2], [0, 3, 1, 4, 2, 5]],
    ];
    for (const [name, view, shape, expected] of cases) {
      it(name, () => {
        const wire = encodeTensor(view());
        assert.equal(wire.datatype, D.DATA_TYPE_FP64);
        assert.deepEqual(wire.shape, shape);
        assert.deepEqual(bytesOf(wire.data), bytesOf(new Float64Array(expected)));
        assert.deepEqual([...toFloat64(view())], expected);
        assert.deepEqual(values(decodeTensor(wire, "v")), expected);
      });
    }

    it("transposed 3-D INT64 view with values beyond 2^53", () => {
      const big = 2n ** 60n;
      const arr = new BigInt64Array(24).map((_, i) => big + BigInt(i) * (i % 2 ? -1n : 1n));
      const view = ndarray(arr, [2, 3, 4]).transpose(2, 0, 1);
      const back = decodeTensor(encodeTensor(view), "i64");
      assert.deepEqual(back.shape, [4, 2, 3]);
      assert.deepEqual(values(back), values(view));
    });

    it("encoded bytes are a copy", () => {
      const arr = new Float64Array([1, 2]);
      const wire = encodeTensor(ndarray(arr, [2]));
      arr[0] = 7;
      assert.deepEqual(bytesOf(wire.data), bytesOf(new Float64Array([1, 2])));
    });
  });

  describe("conversions", () => {
    it("FP64 encoded as FP32 rounds to float32", () => {
      const src = [1 / 3, 1e40, -1e-50, NaN, 2 ** 24 + 1];
      const wire = encodeTensor(ndarray(new Float64Array(src), [5]), D.DATA_TYPE_FP32);
      assert.equal(wire.datatype, D.DATA_TYPE_FP32);
      assert.equal(wire.data.byteLength, 20);
      const back = decodeTensor(wire, "f");
      assert.ok(back.data instanceof Float32Array);
      assert.deepEqual([...back.data], src.map(Math.fround));
    });

    it("floats to integers truncate (typed-array rules); 64-bit targets get bigints", () => {
      const src = new Float64Array([1.9, -1.9, 2 ** 53, NaN, Infinity]);
      assert.deepEqual([...decodeTensor(encodeTensor(ndarray(src, [5]), D.DATA_TYPE_INT32), "i").data], [1, -1, 0, 0, 0]);
      assert.deepEqual([...decodeTensor(encodeTensor(ndarray(src, [5]), D.DATA_TYPE_INT64), "i").data], [1n, -1n, 2n ** 53n, 0n, 0n]);
    });

    it("64-bit integers to FP64 and toFloat64", () => {
      const src = ndarray(new BigInt64Array([-3n, 2n ** 60n]), [2]);
      assert.deepEqual([...decodeTensor(encodeTensor(src, D.DATA_TYPE_FP64), "f").data], [-3, 2 ** 60]);
      assert.deepEqual([...toFloat64(src)], [-3, 2 ** 60]);
      assert.deepEqual([...toFloat64(ndarray(new Float64Array([7]), []))], [7]);
      assert.deepEqual([...toFloat64(ndarray(new Int8Array([1, -2, 3, -4]), [2, 2]).transpose(1, 0))], [1, 3, -2, -4]);
    });
  });

  describe("helpers", () => {
    it("dataTypeOfArray", () => {
      assert.equal(dataTypeOfArray(new Float64Array(1)), D.DATA_TYPE_FP64);
      assert.equal(dataTypeOfArray(new Float32Array(1)), D.DATA_TYPE_FP32);
      assert.equal(dataTypeOfArray([1, 2]), D.DATA_TYPE_FP64);
      assert.equal(dataTypeOfArray(new Uint8Array(1)), D.DATA_TYPE_UINT8);
      assert.equal(dataTypeOfArray(Buffer.alloc(1)), D.DATA_TYPE_UINT8);
      assert.equal(dataTypeOfArray(new BigInt64Array(1)), D.DATA_TYPE_INT64);
      assert.equal(dataTypeOfArray(new BigUint64Array(1)), D.DATA_TYPE_UINT64);
      assert.equal(dataTypeOfArray(new Int16Array(1)), D.DATA_TYPE_INT16);
    });

    it("dataTypeName and itemSize", () => {
      assert.equal(dataTypeName(11), "DATA_TYPE_FP64");
      assert.equal(dataTypeName(0), "DATA_TYPE_UNSPECIFIED");
      assert.equal(dataTypeName(42), "42 (not a tesseract.v1.DataType)");
      assert.deepEqual(
        samples.map((s) => itemSize(s.dt)),
        [1, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8],
      );
      assert.throws(() => itemSize(D.DATA_TYPE_UNSPECIFIED), /DATA_TYPE_UNSPECIFIED/);
    });

    it("isNdArray", () => {
      assert.ok(isNdArray(ndarray(new Float64Array(2))));
      assert.ok(isNdArray(ndarray([1, 2]).transpose(0)));
      assert.ok(!isNdArray(new Float64Array(2)));
      assert.ok(!isNdArray({ shape: [2], data: [1, 2] }));
      assert.ok(!isNdArray(null));
    });

    it("normalizeShape accepts numbers, bigints, strings and Longs", () => {
      assert.deepEqual(normalizeShape([2, 3n, "4", { low: 5, high: 0 }, { low: 6, high: 0, unsigned: true }], "s"), [2, 3, 4, 5, 6]);
      assert.deepEqual(normalizeShape([], "s"), []);
      assert.equal(DEFAULT_LIMITS.maxElements, DEFAULT_MAX_ELEMENTS);
    });

    it("abstract tensors: elements but no data", () => {
      const abs = decodeAbstractTensor({ datatype: D.DATA_TYPE_FP32, shape: [2, 3], data: new Uint8Array(0) }, "a");
      assert.deepEqual(abs, { shape: [2, 3], datatype: D.DATA_TYPE_FP32 });
      const scalar = decodeAbstractTensor({ datatype: D.DATA_TYPE_INT64, shape: [], data: new Uint8Array(0) }, "a");
      assert.deepEqual(scalar, { shape: [], datatype: D.DATA_TYPE_INT64 });
      const concrete = decodeAbstractTensor(encodeTensor(ndarray(new Float64Array([1, 2]), [2])), "a");
      assert.deepEqual([...concrete.array!.data], [1, 2]);
      // Abstract tensors are only allowed where the caller asks for them.
      rejects(() => decodeTensor({ datatype: D.DATA_TYPE_FP32, shape: [2, 3], data: new Uint8Array(0) }, "a"), /^a: data has 0 bytes, expected 24/);
    });
  });

  describe("rejections (INVALID_ARGUMENT, naming the field)", () => {
    const fp64 = (shape: TensorMessage["shape"], nbytes = 8): TensorMessage => ({ datatype: D.DATA_TYPE_FP64, shape, data: new Uint8Array(nbytes) });

    it("byte length mismatch", () => {
      assert.throws(
        () => decodeTensor({ datatype: D.DATA_TYPE_FP64, shape: [1, 3], data: new Uint8Array(20) }, "mesh.points"),
        (err: any) => err.code === 3 && err.message === "mesh.points: data has 20 bytes, expected 24 (shape [1, 3] of DATA_TYPE_FP64, 8 bytes each)",
      );
      rejects(() => decodeTensor({ datatype: D.DATA_TYPE_BOOL, shape: [], data: new Uint8Array(2) }, "flag"), /^flag: data has 2 bytes, expected 1 \(shape \[\] of DATA_TYPE_BOOL, 1 byte each\)$/);
      rejects(() => decodeAbstractTensor({ datatype: D.DATA_TYPE_INT32, shape: [4], data: new Uint8Array(15) }, "c"), /^c: data has 15 bytes, expected 16 .*DATA_TYPE_INT32, 4 bytes each/);
      rejects(() => decodeTensor({ datatype: D.DATA_TYPE_FP32, shape: [0, 3], data: new Uint8Array(4) }, "e"), /^e: data has 4 bytes, expected 0 \(shape \[0, 3\]/);
    });

    it("unsupported datatypes", () => {
      rejects(() => decodeTensor({ datatype: 0, shape: [1], data: new Uint8Array(8) }, "mesh.points"), /^mesh\.points: no datatype \(DATA_TYPE_UNSPECIFIED\): expected one of DATA_TYPE_BOOL \(1\) to DATA_TYPE_FP64 \(11\) \(a tensor is datatype, shape and data; from the TypeScript SDK, ndarray\(data, shape\), not a plain list\)$/);
      // A tensor never given a datatype (a map entry without its value): the same, not "unknown datatype undefined".
      rejects(() => decodeTensor({ shape: [1], data: new Uint8Array(8) } as never, "tangent_vector.{x}"), /^tangent_vector\.\{x\}: no datatype \(DATA_TYPE_UNSPECIFIED\): expected one of/);
      rejects(() => decodeTensor({ datatype: 42, shape: [1], data: new Uint8Array(8) }, "x"), /^x: unsupported datatype 42 \(not a tesseract\.v1\.DataType\), expected/);
      rejects(() => decodeAbstractTensor({ datatype: -1, shape: [1], data: new Uint8Array(0) }, "y"), /^y: .*datatype -1 \(not a tesseract\.v1\.DataType\)/);
      assert.throws(() => encodeTensor(ndarray(new Float64Array(1)), D.DATA_TYPE_UNSPECIFIED), TypeError);
    });

    it("BOOL bytes other than 0 and 1 name the flat index", () => {
      const data = new Uint8Array([0, 1, 1, 0, 2, 1]);
      rejects(() => decodeTensor({ datatype: D.DATA_TYPE_BOOL, shape: [2, 3], data }, "mask"), /^mask: DATA_TYPE_BOOL element 4 \(flat index\) is 2, expected 0 or 1$/);
      rejects(() => decodeTensor({ datatype: D.DATA_TYPE_BOOL, shape: [1], data: new Uint8Array([255]) }, "m"), /element 0 .*is 255/);
    });

    it("negative, non-integer and malformed dimensions", () => {
      rejects(() => decodeTensor(fp64([-1, 3]), "a.b"), /^a\.b: shape\[0\] is -1, expected a non-negative integer \(shape \[-1, 3\]\)$/);
      rejects(() => decodeTensor(fp64([2, 1.5]), "a"), /^a: shape\[1\] is 1\.5, expected a non-negative integer/);
      rejects(() => decodeTensor(fp64([NaN]), "a"), /^a: shape\[0\] is NaN/);
      rejects(() => decodeTensor(fp64(["abc"]), "a"), /^a: shape\[0\] is "abc"/);
      rejects(() => decodeTensor(fp64([-2n]), "a"), /^a: shape\[0\] is -2/);
      // int64 -1 as protobufjs' Long.
      rejects(() => decodeTensor(fp64([{ low: -1, high: -1, unsigned: false }]), "a"), /^a: shape\[0\] is -1, expected/);
      rejects(() => decodeTensor(fp64([null as any]), "a"), /^a: shape\[0\] is null/);
    });

    it("absurd shapes are rejected before anything is allocated", () => {
      const Real = globalThis.ArrayBuffer;
      let allocations = 0;
      globalThis.ArrayBuffer = new Proxy(Real, {
        construct(target, args, newTarget) {
          allocations++;
          return Reflect.construct(target, args, newTarget);
        },
      });
      try {
        rejects(() => decodeTensor(fp64([2 ** 40, 2 ** 40]), "huge"), /^huge: shape\[0\] is 1099511627776, more than the limit of 268435456 elements/);
        rejects(() => decodeAbstractTensor(fp64([2 ** 40, 2 ** 40], 0), "huge"), /^huge: shape\[0\] is 1099511627776/);
        // Each dimension is fine, the product is not.
        rejects(() => decodeTensor(fp64([2 ** 20, 2 ** 20]), "p"), /^p: shape \[1048576, 1048576\] has more than 268435456 elements, the limit$/);
        rejects(() => decodeTensor(fp64(new Array(60).fill(2)), "p"), /has more than 268435456 elements/);
        // Beyond int64: as a Long, 2^63 + 2^32 unsigned.
        rejects(() => decodeTensor(fp64([{ low: 0, high: -2147483647, unsigned: true }]), "l"), /^l: shape\[0\] is 9223372041149743104, more than/);
        assert.equal(allocations, 0);
        decodeTensor(fp64([1]), "ok");
        assert.equal(allocations, 1, "the spy sees the decoder's allocation");
      } finally {
        globalThis.ArrayBuffer = Real;
      }
    });

    it("products past 2^53 are exact even without a practical limit", () => {
      const limits = { maxElements: Infinity };
      // (2^26 + 1)(2^27 + 1) = 2^53 + 3·2^26 + 1: in doubles this product could round down to look safe.
      rejects(() => normalizeShape([2 ** 26 + 1, 2 ** 27 + 1], "x", limits), /^x: shape \[67108865, 134217729\] has more than 9007199254740991 elements/);
      rejects(() => normalizeShape(["18446744073709551615"], "x", limits), /^x: shape\[0\] is 18446744073709551615, more than the limit of 9007199254740991/);
      assert.deepEqual(normalizeShape([2 ** 26, 2 ** 27 - 1], "x", limits), [2 ** 26, 2 ** 27 - 1]); // just under the 2^53 - 1 cap
      // A zero dimension makes the count 0, whatever the others claim.
      assert.deepEqual(normalizeShape([0, 2 ** 40], "x", limits), [0, 2 ** 40]);
    });

    it("custom limits and the rank limit", () => {
      rejects(() => decodeTensor(fp64([4, 3], 96), "small", { maxElements: 10 }), /^small: shape \[4, 3\] has more than 10 elements, the limit$/);
      assert.deepEqual(decodeTensor(fp64([2, 5], 80), "small", { maxElements: 10 }).shape, [2, 5]);
      rejects(() => decodeTensor(fp64(new Array(65).fill(1)), "r"), /^r: shape has 65 dimensions, expected at most 64$/);
      assert.equal(decodeTensor(fp64(new Array(64).fill(1)), "r").shape.length, 64);
      rejects(() => normalizeShape([1, 1, 1], "r", { maxElements: 10, maxRank: 2 }), /^r: shape has 3 dimensions, expected at most 2$/);
    });
  });
});
