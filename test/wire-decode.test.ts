/**
 * The strict protobuf decoder (server/schema/wire-decode.ts): on valid bytes it agrees with
 * protobufjs (fast-check, fixed seed, every field kind of test/fixtures/wire/wire.proto); on
 * malformed bytes it refuses with INVALID_ARGUMENT naming the field, where protobufjs is lenient.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import fc from "fast-check";
import { Code, TesseractError } from "../index";
import { loadRoot } from "../server/schema/schema";
import { decodeStrict, MAX_REPEATED_VALUES, type DecodeStyle } from "../server/schema/wire-decode";
import { ProtoWriter, WireType } from "./raw-grpc";

const root = loadRoot([path.join(__dirname, "../../test/fixtures/wire/wire.proto")]);
const Everything = root.lookupType("tesseract.testing.wire.v1.Everything");
const TREES: DecodeStyle = { longs: "number", defaults: true };
const REQUESTS: DecodeStyle = { longs: "string", defaults: false };

/** Plain data for comparison: bytes as arrays, null-prototype maps as plain objects. */
function plain(x: unknown): unknown {
  if (x instanceof Uint8Array) return Array.from(x);
  if (Array.isArray(x)) return x.map(plain);
  if (x !== null && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

function refuses(bytes: Uint8Array, message: RegExp, style = TREES): void {
  assert.throws(
    () => decodeStrict(Everything, bytes, "inputs", style),
    (e: unknown) => {
      assert.ok(e instanceof TesseractError, String(e));
      assert.equal(e.code, Code.INVALID_ARGUMENT);
      assert.match(e.message, /^inputs: cannot decode tesseract\.testing\.wire\.v1\.Everything: /);
      assert.match(e.message, message);
      return true;
    },
  );
}

const int64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
const uint64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const inner = fc.record({ name: fc.string(), values: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 4 }) }, { requiredKeys: [] });
const everything = fc.record(
  {
    f_double: fc.double(),
    f_float: fc.float().map(Math.fround),
    f_int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    f_int64: int64,
    f_uint32: fc.nat({ max: 2 ** 32 - 1 }),
    f_uint64: uint64,
    f_sint32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    f_sint64: int64,
    f_fixed32: fc.nat({ max: 2 ** 32 - 1 }),
    f_fixed64: uint64,
    f_sfixed32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    f_sfixed64: int64,
    f_bool: fc.boolean(),
    f_string: fc.string({ unit: "grapheme" }),
    f_bytes: fc.uint8Array({ maxLength: 8 }),
    color: fc.constantFrom(0, 1, 7),
    inner,
    inners: fc.array(inner, { maxLength: 3 }),
    longs: fc.array(int64, { maxLength: 3 }),
    doubles: fc.array(fc.double(), { maxLength: 3 }),
    counts: fc.dictionary(fc.string(), int64, { maxKeys: 3 }),
    by_number: fc.dictionary(fc.integer({ min: -5, max: 5 }).map(String), inner, { maxKeys: 3 }),
    maybe: fc.double(),
    text: fc.string(),
  },
  { requiredKeys: [] },
);

/** Whether a generated message holds a 64-bit integer beyond what a number holds exactly. */
const hasUnsafeLong = (m: Record<string, unknown>): boolean =>
  [m.f_int64, m.f_uint64, m.f_sint64, m.f_fixed64, m.f_sfixed64, ...((m.longs as bigint[] | undefined) ?? []), ...Object.values((m.counts as Record<string, bigint> | undefined) ?? {})].some(
    (v) => typeof v === "bigint" && (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)),
  );

/** protobufjs wants 64-bit values as strings (exact) and one member of a oneof. */
const forProtobufjs = (m: Record<string, unknown>) => JSON.parse(JSON.stringify(m, (_, v) => (typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)));

describe("strict protobuf decoding", () => {
  it("agrees with protobufjs on valid messages of every field kind, in both styles", () => {
    fc.assert(
      fc.property(everything, (message) => {
        const bytes = Everything.encode(Everything.fromObject(forProtobufjs(message))).finish();
        const reference = Everything.decode(bytes);
        for (const [style, options] of [
          [TREES, { longs: Number, enums: Number, defaults: true, arrays: true, objects: true }],
          [REQUESTS, { longs: String, enums: Number, defaults: false, arrays: true, objects: true }],
        ] as const) {
          const expected = plain(Everything.toObject(reference, options)) as Record<string, unknown>;
          if (style.defaults) {
            // protobufjs sets unset messages to null where the strict decoder leaves them out.
            for (const [key, value] of Object.entries(expected)) if (value === null) delete expected[key];
          }
          // Trees hold 64-bit integers as numbers: one no number holds exactly is refused (protobufjs rounds it).
          if (style === TREES && hasUnsafeLong(message)) assert.throws(() => decodeStrict(Everything, bytes, "inputs", style), /is beyond ±9007199254740991, the integers a JavaScript number holds exactly/);
          else assert.deepEqual(plain(decodeStrict(Everything, bytes, "inputs", style)), expected);
        }
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it("values of repeated number fields past maxRepeatedValues in all are RESOURCE_EXHAUSTED, counted before they are read (64 MiB of packed zeros took 6 s and 1.5 GB)", () => {
    const bytes = Everything.encode(Everything.fromObject({ longs: new Array(600).fill("1"), doubles: new Array(500).fill(0.5) })).finish();
    assert.equal((decodeStrict(Everything, bytes, "inputs", TREES, { maxRepeatedValues: 1100 }).longs as unknown[]).length, 600);
    assert.throws(
      () => decodeStrict(Everything, bytes, "inputs", TREES, { maxRepeatedValues: 1000 }),
      (e: TesseractError) => e.code === Code.RESOURCE_EXHAUSTED && /: doubles: more than 1000 values of repeated number fields in all; send arrays of numbers as tensors \(at byte \d+\)$/.test(e.message),
    );
    assert.equal(MAX_REPEATED_VALUES, 2 ** 24);
  });

  it("a 64-bit integer beyond ±(2^53 - 1) is refused in a tree, naming it exactly (it was rounded: 9007199254740993 read as ...992); requests keep it as an exact string", () => {
    for (const [field, value] of [["f_int64", "9007199254740993"], ["f_uint64", "18446744073709551615"], ["f_sint64", "-9007199254740992"], ["f_sfixed64", "-9223372036854775808"]] as const) {
      const bytes = Everything.encode(Everything.fromObject({ [field]: value })).finish();
      refuses(bytes, new RegExp(`^inputs: cannot decode tesseract\\.testing\\.wire\\.v1\\.Everything: ${field}: ${value} is beyond ±9007199254740991, the integers a JavaScript number holds exactly \\(at byte \\d+\\)$`));
      assert.equal(decodeStrict(Everything, bytes, "request", REQUESTS)[field], value);
    }
    const safe = Everything.encode(Everything.fromObject({ f_int64: "-9007199254740991", longs: ["9007199254740991"] })).finish();
    assert.deepEqual([decodeStrict(Everything, safe, "inputs", TREES).f_int64, decodeStrict(Everything, safe, "inputs", TREES).longs], [-9007199254740991, [9007199254740991]]);
  });

  it("reads unpacked repeated scalars, merges a message sent twice, keeps the last scalar and oneof member", () => {
    const bytes = new ProtoWriter()
      .tag(19, WireType.VARINT).varint(5).tag(19, WireType.VARINT).varint(-1) // unpacked longs
      .message(17, (w) => w.tag(1, WireType.LEN).string("a"))
      .message(17, (w) => w.tag(2, WireType.VARINT).varint(4)) // merged into the same inner
      .tag(3, WireType.VARINT).varint(1).tag(3, WireType.VARINT).varint(2) // last wins
      .tag(24, WireType.LEN).string("text").message(25, (w) => w.tag(1, WireType.LEN).string("m"))
      .finish();
    const m = decodeStrict(Everything, bytes, "inputs", TREES);
    assert.deepEqual(m.longs, [5, -1]);
    assert.deepEqual(plain(m.inner), { name: "a", values: [2] });
    assert.equal(m.f_int32, 2);
    assert.equal(m.text, undefined);
    assert.deepEqual(plain(m.message), { name: "m", values: [] });
  });

  it("skips unknown fields of every wire type, groups included", () => {
    const bytes = new ProtoWriter()
      .tag(100, WireType.VARINT).varint(300)
      .tag(101, WireType.I64).raw(Buffer.alloc(8))
      .tag(102, WireType.I32).raw(Buffer.alloc(4))
      .tag(103, WireType.LEN).string("skipped")
      .tag(104, WireType.SGROUP).tag(1, WireType.VARINT).varint(1).tag(105, WireType.SGROUP).tag(105, WireType.EGROUP).tag(104, WireType.EGROUP)
      .tag(14, WireType.LEN).string("kept")
      .finish();
    assert.equal(decodeStrict(Everything, bytes, "inputs", TREES).f_string, "kept");
  });

  it('keeps map keys such as "__proto__" as data, in a null-prototype object', () => {
    const entry = (key: string, value: number) => (w: ProtoWriter) => w.tag(1, WireType.LEN).string(key).tag(2, WireType.VARINT).varint(value);
    const bytes = new ProtoWriter().message(21, entry("__proto__", 1)).message(21, entry("constructor", 2)).message(21, entry("toString", 3)).finish();
    const counts = decodeStrict(Everything, bytes, "inputs", TREES).counts as Record<string, number>;
    assert.equal(Object.getPrototypeOf(counts), null);
    assert.deepEqual(Object.entries(counts), [["__proto__", 1], ["constructor", 2], ["toString", 3]]);
  });

  describe("refuses what conformant parsers refuse, naming the field", () => {
    it("a known field with another wire type", () => {
      refuses(new ProtoWriter().tag(14, WireType.VARINT).varint(1).finish(), /f_string: wire type 0 \(varint\), expected 2 \(length-delimited\) for string/);
      refuses(new ProtoWriter().tag(17, WireType.I32).raw(Buffer.alloc(4)).finish(), /inner: wire type 5 \(32-bit\), expected 2 \(length-delimited\) for message tesseract\.testing\.wire\.v1\.Inner/);
      refuses(new ProtoWriter().tag(16, WireType.LEN).varint(0).finish(), /color: wire type 2 \(length-delimited\), expected 0 \(varint\) for enum tesseract\.testing\.wire\.v1\.Color/);
      refuses(new ProtoWriter().tag(1, WireType.I32).raw(Buffer.alloc(4)).finish(), /f_double: wire type 5 \(32-bit\), expected 1 \(64-bit\) for double/);
    });

    it("field number 0, wire types 6 and 7, unmatched groups", () => {
      refuses(Buffer.from([0x00, 0x01]), /: field number 0 /);
      refuses(Buffer.from([0xf6, 0x01]), /invalid wire type 6 for field 30/);
      refuses(Buffer.from([0xf7, 0x01]), /invalid wire type 7 for field 30/);
      refuses(Buffer.from([0x0e]), /f_double: wire type 6 \(invalid\), expected 1 \(64-bit\) for double/);
      refuses(new ProtoWriter().tag(9, WireType.EGROUP).finish(), /end-group tag for field 9 without its start-group/);
      refuses(new ProtoWriter().tag(99, WireType.SGROUP).tag(98, WireType.EGROUP).finish(), /end-group tag for field 98 closes the group of field 99/);
      refuses(new ProtoWriter().tag(99, WireType.SGROUP).finish(), /group of field 99 has no end-group tag/);
    });

    it("truncated and over-long varints, lengths past the end, truncated fixed-width values", () => {
      refuses(Buffer.from([0x18, 0x80]), /f_int32: truncated varint/);
      refuses(Buffer.from([0x18, ...Array(10).fill(0xff), 0x01]), /f_int32: varint (overflows 64 bits|longer than 10 bytes)/);
      refuses(Buffer.from([0x72, 0x05, 0x61]), /f_string: length 5 runs past the end of its message \(1 byte left\)/);
      refuses(Buffer.from([0x09, 0x00, 0x00]), /f_double: truncated 64-bit value/);
      // A nested message whose last varint runs into its parent's bytes.
      refuses(Buffer.from([0x8a, 0x01, 0x02, 0x10, 0x80, 0x01]), /inner: the last field runs past the end of its message|inner\.values/);
    });

    it("strings that are not valid UTF-8, in fields and map keys", () => {
      for (const bad of [[0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xff], [0xe2, 0x82]]) {
        refuses(new ProtoWriter().tag(14, WireType.LEN).varint(bad.length).raw(Buffer.from(bad)).finish(), /f_string: string is not valid UTF-8/);
      }
      const badKey = new ProtoWriter().message(21, (w) => w.tag(1, WireType.LEN).varint(3).raw(Buffer.from([0xed, 0xa0, 0x80]))).finish();
      refuses(badKey, /counts \(a key\): string is not valid UTF-8/);
    });

    it("nesting deeper than 100 messages or groups", () => {
      let tree: Uint8Array = new Uint8Array(0);
      for (let i = 0; i < 120; i++) tree = new ProtoWriter().message(1, (w) => w.raw(tree)).finish();
      refuses(new ProtoWriter().message(26, (w) => w.raw(tree)).finish(), /tree(\.child)+: nested more than 100 messages deep/);
      const groups = new ProtoWriter();
      for (let i = 0; i < 120; i++) groups.tag(200, WireType.SGROUP);
      for (let i = 0; i < 120; i++) groups.tag(200, WireType.EGROUP);
      refuses(groups.finish(), /nested more than 100 groups deep/);
    });
  });
});
