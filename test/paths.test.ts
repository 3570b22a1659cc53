import { strict as assert } from "node:assert";
import { Code } from "../index";
import {
  countMatches,
  expandPattern,
  formatPath,
  getAtPath,
  isPattern,
  matchesPattern,
  parsePath,
  withLeaf,
  type Segment,
} from "../common/paths";

const field = (name: string): Segment => ({ kind: "field", name });
const index = (i: number): Segment => ({ kind: "index", index: i });
const key = (k: string): Segment => ({ kind: "key", key: k });
const anyIndex: Segment = { kind: "anyIndex" };
const anyKey: Segment = { kind: "anyKey" };

/** Asserts that `fn` throws INVALID_ARGUMENT with a message matching `message`. */
function throwsInvalid(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, Code.INVALID_ARGUMENT);
    assert.equal((err as { code?: unknown }).code, 3);
    assert.match((err as Error).message, message);
    return true;
  });
}

describe("paths: parse and format", () => {
  const cases: [string, Segment[]][] = [
    ["mesh", [field("mesh")]],
    ["mesh.points", [field("mesh"), field("points")]],
    ["_a1.B_2", [field("_a1"), field("B_2")]],
    ["layers.[2].weights", [field("layers"), index(2), field("weights")]],
    ["[0]", [index(0)]],
    ["a.[10].[0]", [field("a"), index(10), index(0)]],
    ["mesh.cell_data.{temperature}", [field("mesh"), field("cell_data"), key("temperature")]],
    ["mesh.cell_data.{}", [field("mesh"), field("cell_data"), anyKey]],
    ["blocks.[].w", [field("blocks"), anyIndex, field("w")]],
    ["{}.[]", [anyKey, anyIndex]],
    ["[9007199254740991]", [index(Number.MAX_SAFE_INTEGER)]],
  ];
  for (const [text, segments] of cases) {
    it(`parses and formats ${text}`, () => {
      assert.deepEqual(parsePath(text), segments);
      assert.equal(formatPath(segments), text);
    });
  }

  const keys: [string, string, string?][] = [
    // [path text, key, canonical text when it differs]
    ["m.{a.b c}", "a.b c"],
    ["m.{ }", " "],
    ["m.{a\\}b}", "a}b"],
    ["m.{a\\\\b}", "a\\b"],
    ["m.{\\}}", "}"],
    ["m.{\\\\}", "\\"],
    ["m.{{}", "{"],
    ["m.{a{b}", "a{b"],
    ["m.{\\{}", "{", "m.{{}"],
    ["m.{\\a\\b}", "ab", "m.{ab}"],
    ["m.{[0]}", "[0]"],
    ["m.{[]}", "[]"],
    ["m.{]}", "]"],
    ["m.{.}", "."],
    ["m.{..}", ".."],
    ["m.{température}", "température"],
    ["m.{温度 😀}", "温度 😀"],
    ['m.{""}', ""],
    ['m.{\\"\\"}', '""'],
    ['m.{"\\"}', '""', 'm.{\\"\\"}'],
    ['m.{"}', '"'],
    ['m.{"""}', '"""'],
    ['m.{"a"}', '"a"'],
    ["m.{0}", "0"],
    ["m.{__proto__}", "__proto__"],
  ];
  for (const [text, k, canonical] of keys) {
    it(`parses key ${JSON.stringify(k)} from ${text}`, () => {
      assert.deepEqual(parsePath(text), [field("m"), key(k)]);
      assert.equal(formatPath([field("m"), key(k)]), canonical ?? text);
    });
  }

  it("writes the empty key as {\"\"}, distinct from the {} pattern", () => {
    assert.equal(formatPath([key("")]), '{""}');
    assert.deepEqual(parsePath('{""}'), [key("")]);
    assert.deepEqual(parsePath("{}"), [anyKey]);
  });

  it("round-trips every generated key", () => {
    const alphabet = ["a", "Z", "0", "_", ".", " ", "{", "}", "[", "]", "\\", '"', "é", "😀", "\n", "\t"];
    const generated: string[] = [""];
    for (const a of alphabet) {
      generated.push(a);
      for (const b of alphabet) {
        generated.push(a + b);
        for (const c of alphabet) generated.push(a + b + c);
      }
    }
    // Longer keys from a fixed linear congruential generator.
    let seed = 12345;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      let k = "";
      const length = next(12);
      for (let j = 0; j < length; j++) k += alphabet[next(alphabet.length)];
      generated.push(k);
    }
    for (const k of generated) {
      const segments = [field("m"), key(k), index(k.length), key(k + k)];
      const text = formatPath(segments);
      assert.deepEqual(parsePath(text), segments, `key ${JSON.stringify(k)} via ${text}`);
    }
  });

  it("refuses to format segments that cannot be written", () => {
    throwsInvalid(() => formatPath([field("a.b")]), /bad field name "a\.b"/);
    throwsInvalid(() => formatPath([field("")]), /bad field name ""/);
    throwsInvalid(() => formatPath([field("1a")]), /bad field name "1a"/);
    throwsInvalid(() => formatPath([index(-1)]), /bad list index -1/);
    throwsInvalid(() => formatPath([index(1.5)]), /bad list index 1\.5/);
  });

  it("formats the empty path as the empty string", () => {
    assert.equal(formatPath([]), "");
  });

  it("tells patterns apart", () => {
    assert.equal(isPattern(parsePath("a.[0].{k}")), false);
    assert.equal(isPattern(parsePath("a.[].{k}")), true);
    assert.equal(isPattern(parsePath("a.[0].{}")), true);
    assert.equal(isPattern([]), false);
  });
});

describe("paths: syntax errors", () => {
  const errors: [string, RegExp][] = [
    ["", /^bad path "": empty path$/],
    ["mesh..points", /^bad path "mesh\.\.points": empty segment at position 5$/],
    [".a", /^bad path "\.a": empty segment at position 0$/],
    ["a.", /^bad path "a\.": empty segment at position 2$/],
    [".", /^bad path "\.": empty segment at position 0$/],
    ["a.{x", /^bad path "a\.\{x": unterminated "\{" at position 2$/],
    ["{", /^bad path "\{": unterminated "\{" at position 0$/],
    ["a.{x\\}", /^bad path "a\.\{x\\\\\}": unterminated "\{" at position 2$/],
    ["a.{x\\", /^bad path "a\.\{x\\\\": unterminated "\{" at position 2$/],
    ["a.[1", /^bad path "a\.\[1": unterminated "\[" at position 2$/],
    ["a.[-1]", /^bad path "a\.\[-1\]": bad index "-1" .* at position 2$/],
    ["a.[+1]", /^bad path "a\.\[\+1\]": bad index "\+1" .* at position 2$/],
    ["a.[01]", /^bad path "a\.\[01\]": bad index "01" \(want a non-negative integer without sign or leading zeros\) at position 2$/],
    ["a.[1.5]", /^bad path "a\.\[1\.5\]": bad index "1\.5" .* at position 2$/],
    ["a.[1e3]", /^bad path "a\.\[1e3\]": bad index "1e3" .* at position 2$/],
    ["a.[x]", /^bad path "a\.\[x\]": bad index "x" .* at position 2$/],
    ["a.[ 1]", /^bad path "a\.\[ 1\]": bad index " 1" .* at position 2$/],
    ["a.[9007199254740992]", /^bad path "a\.\[9007199254740992\]": index 9007199254740992 too large at position 2$/],
    ["a[0]", /^bad path "a\[0\]": unexpected "\[" \(want "\." or end of path\) at position 1$/],
    ["a-b", /^bad path "a-b": unexpected "-" \(want "\." or end of path\) at position 1$/],
    ["a.{k}x", /^bad path "a\.\{k\}x": unexpected "x" \(want "\." or end of path\) at position 5$/],
    ["a.[0]{k}", /^bad path "a\.\[0\]\{k\}": unexpected "\{" .* at position 5$/],
    ["a b", /^bad path "a b": unexpected " " .* at position 1$/],
    ["1a", /^bad path "1a": unexpected "1" \(want a field name, "\[" or "\{"\) at position 0$/],
    ["a.]", /^bad path "a\.\]": unexpected "\]" \(want a field name, "\[" or "\{"\) at position 2$/],
    ["a.}", /^bad path "a\.\}": unexpected "\}" .* at position 2$/],
    ["a.é", /^bad path "a\.é": unexpected "é" .* at position 2$/],
    ["a.😀", /^bad path "a\.😀": unexpected "😀" .* at position 2$/],
    [" a", /^bad path " a": unexpected " " .* at position 0$/],
  ];
  for (const [text, message] of errors) {
    it(`rejects ${JSON.stringify(text)}`, () => throwsInvalid(() => parsePath(text), message));
  }
});

describe("paths: getAtPath", () => {
  const points = { shape: [2, 3] };
  const tree = {
    mesh: {
      points,
      cell_data: { temperature: 1, "a.b c": 2, "": 3, "}": 4 },
      n_points: 0,
    },
    layers: [{ weights: "w0" }, { weights: "w1" }, { weights: "w2" }],
    nested: [[10, 11], [20]],
    nothing: null,
  };
  const get = (path: string): unknown => getAtPath(tree, parsePath(path));

  it("reads nested messages, maps and lists", () => {
    assert.equal(get("mesh.points"), points);
    assert.equal(get("mesh.n_points"), 0);
    assert.equal(get("mesh.cell_data.{temperature}"), 1);
    assert.equal(get("mesh.cell_data.{a.b c}"), 2);
    assert.equal(get('mesh.cell_data.{""}'), 3);
    assert.equal(get("mesh.cell_data.{\\}}"), 4);
    assert.equal(get("layers.[2].weights"), "w2");
    assert.equal(get("nested.[0].[1]"), 11);
    assert.equal(get("nested.[1].[0]"), 20);
    assert.equal(get("nothing"), null);
    assert.equal(get("mesh.points.shape.[1]"), 3);
    assert.equal(getAtPath(tree, []), tree);
  });

  it("is undefined for missing steps", () => {
    assert.equal(get("mesh.missing"), undefined);
    assert.equal(get("missing.points"), undefined);
    assert.equal(get("mesh.cell_data.{pressure}"), undefined);
    assert.equal(get("layers.[3]"), undefined);
    assert.equal(get("layers.[3].weights"), undefined);
    assert.equal(get("nested.[1].[1]"), undefined);
    assert.equal(get("nothing.x"), undefined);
    assert.equal(get("mesh.n_points.x"), undefined);
  });

  it("is undefined for the wrong container kind", () => {
    assert.equal(get("layers.weights"), undefined); // field on a list
    assert.equal(get("layers.{0}"), undefined); // key on a list
    assert.equal(get("mesh.[0]"), undefined); // index on a message
    assert.equal(getAtPath("abc", [field("length")]), undefined); // a string is a leaf
    assert.equal(getAtPath(new Float64Array(3), [index(0)]), undefined); // so is a typed array
    class Tensor {
      data = [1];
    }
    assert.equal(getAtPath({ t: new Tensor() }, parsePath("t.data")), undefined); // so is a class instance
  });

  it("skips holes in sparse lists", () => {
    // eslint-disable-next-line no-sparse-arrays
    assert.equal(getAtPath({ l: [1, , 3] }, parsePath("l.[1]")), undefined);
  });

  it("never reads inherited properties", () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      assert.equal(getAtPath({}, [field(name)]), undefined, name);
      assert.equal(getAtPath({ m: {} }, [field("m"), key(name)]), undefined, name);
    }
    assert.equal(getAtPath({ l: [1] }, [field("l"), field("length")]), undefined);
    const own = JSON.parse('{"__proto__": {"x": 1}}') as unknown;
    assert.deepEqual(getAtPath(own, parsePath("{__proto__}.x")), 1);
  });

  it("reads null-prototype objects", () => {
    const m = Object.create(null) as Record<string, unknown>;
    m["k"] = 5;
    assert.equal(getAtPath({ m }, parsePath("m.{k}")), 5);
  });

  it("rejects patterns", () => {
    throwsInvalid(() => getAtPath(tree, parsePath("layers.[].weights")), /^bad path "layers\.\[\]\.weights": .*pattern/);
  });
});

describe("paths: withLeaf", () => {
  const make = () => ({
    mesh: {
      points: { shape: [2, 3] },
      cell_data: { temperature: { v: 1 }, pressure: { v: 2 } },
    },
    layers: [{ weights: "w0" }, { weights: "w1" }],
    other: { untouched: true },
  });

  it("replaces a leaf, copying only the containers on the path", () => {
    const tree = make();
    const snapshot = JSON.stringify(tree);
    const out = withLeaf(tree, parsePath("mesh.cell_data.{temperature}"), "T");
    assert.equal(JSON.stringify(tree), snapshot); // original untouched
    assert.equal(out.mesh.cell_data.temperature as unknown, "T");
    assert.notEqual(out, tree);
    assert.notEqual(out.mesh, tree.mesh);
    assert.notEqual(out.mesh.cell_data, tree.mesh.cell_data);
    assert.equal(out.mesh.points, tree.mesh.points);
    assert.equal(out.mesh.cell_data.pressure, tree.mesh.cell_data.pressure);
    assert.equal(out.layers, tree.layers);
    assert.equal(out.other, tree.other);
    assert.deepEqual(Object.keys(out.mesh.cell_data), ["temperature", "pressure"]); // order kept
  });

  it("copies lists along the path", () => {
    const tree = make();
    const out = withLeaf(tree, parsePath("layers.[1].weights"), "W");
    assert.deepEqual(out.layers, [{ weights: "w0" }, { weights: "W" }]);
    assert.deepEqual(tree.layers, [{ weights: "w0" }, { weights: "w1" }]);
    assert.ok(Array.isArray(out.layers));
    assert.notEqual(out.layers, tree.layers);
    assert.equal(out.layers[0], tree.layers[0]);
    assert.notEqual(out.layers[1], tree.layers[1]);
    assert.equal(out.mesh, tree.mesh);
  });

  it("adds a missing last field or key", () => {
    const tree = make();
    const out = withLeaf(tree, parsePath("mesh.cell_data.{a.b c}"), 7);
    assert.equal((out.mesh.cell_data as Record<string, unknown>)["a.b c"], 7);
    assert.equal(Object.hasOwn(tree.mesh.cell_data, "a.b c"), false);
  });

  it("works on frozen trees and keeps null prototypes", () => {
    const m = Object.create(null) as Record<string, unknown>;
    m["k"] = 1;
    const tree = Object.freeze({ m: Object.freeze(m), l: Object.freeze([1, 2]) });
    const out = withLeaf(withLeaf(tree, parsePath("m.{k}"), 2), parsePath("l.[0]"), 9);
    assert.equal(out.m["k"], 2);
    assert.equal(Object.getPrototypeOf(out.m), null);
    assert.deepEqual(out.l, [9, 2]);
    assert.equal(m["k"], 1);
  });

  it("returns the value for the empty path", () => {
    assert.equal(withLeaf({ a: 1 }, [], 5) as unknown, 5);
  });

  it("throws naming the path when a container is missing or of the wrong kind", () => {
    const tree = make();
    throwsInvalid(() => withLeaf(tree, parsePath("mesh.missing.x"), 1), /^cannot set "mesh\.missing\.x": "mesh\.missing" is missing$/);
    throwsInvalid(() => withLeaf(tree, parsePath("layers.[2].weights"), 1), /^cannot set "layers\.\[2\]\.weights": "layers" has no element 2 \(length 2\)$/);
    throwsInvalid(() => withLeaf(tree, parsePath("layers.[2]"), 1), /"layers" has no element 2/);
    throwsInvalid(() => withLeaf(tree, parsePath("mesh.[0]"), 1), /^cannot set "mesh\.\[0\]": "mesh" is not a list$/);
    throwsInvalid(() => withLeaf(tree, parsePath("layers.x"), 1), /^cannot set "layers\.x": "layers" is not a message or map$/);
    throwsInvalid(() => withLeaf(tree, parsePath("mesh.points.shape.x"), 1), /"mesh\.points\.shape" is not a message or map/);
    throwsInvalid(() => withLeaf(undefined, parsePath("a"), 1), /^cannot set "a": the root is missing$/);
    throwsInvalid(() => withLeaf(tree, parsePath("layers.[].weights"), 1), /^bad path "layers\.\[\]\.weights": .*pattern/);
    throwsInvalid(() => withLeaf({}, [field("constructor"), field("x")], 1), /"constructor" is missing/);
  });
});

describe("paths: patterns", () => {
  const tree = {
    mesh: {
      cell_data: { temperature: 1, "a.b c": 2, "": 3 },
      point_data: {},
    },
    blocks: [{ w: "w0" }, { v: "no w" }, { w: "w2" }],
    grid: [
      [1, 2],
      [3],
    ],
    maps: [{ a: 1 }, { b: 2, a: 3 }],
  };
  const expand = (pattern: string): string[] => expandPattern(tree, parsePath(pattern)).map(formatPath);

  it("expands map keys in insertion order", () => {
    assert.deepEqual(expand("mesh.cell_data.{}"), [
      "mesh.cell_data.{temperature}",
      "mesh.cell_data.{a.b c}",
      'mesh.cell_data.{""}',
    ]);
    assert.deepEqual(expand("mesh.point_data.{}"), []);
    assert.deepEqual(expand("mesh.{}"), ["mesh.{cell_data}", "mesh.{point_data}"]);
  });

  it("expands list indices, skipping elements without the leaf", () => {
    assert.deepEqual(expand("blocks.[].w"), ["blocks.[0].w", "blocks.[2].w"]);
    assert.deepEqual(expand("grid.[].[]"), ["grid.[0].[0]", "grid.[0].[1]", "grid.[1].[0]"]);
    assert.deepEqual(expand("maps.[].{}"), ["maps.[0].{a}", "maps.[1].{b}", "maps.[1].{a}"]);
    assert.deepEqual(expand("maps.[].{a}"), ["maps.[0].{a}", "maps.[1].{a}"]);
    // eslint-disable-next-line no-sparse-arrays
    assert.deepEqual(expandPattern({ l: [1, , 3] }, parsePath("l.[]")).map(formatPath), ["l.[0]", "l.[2]"]);
  });

  it("expands to nothing across the wrong container kind or missing parts", () => {
    assert.deepEqual(expand("blocks.{}"), []);
    assert.deepEqual(expand("mesh.[]"), []);
    assert.deepEqual(expand("missing.[]"), []);
    assert.deepEqual(expand("mesh.cell_data.{temperature}.{}"), []);
  });

  it("gives concrete paths whose leaves exist", () => {
    for (const pattern of ["blocks.[].w", "grid.[].[]", "maps.[].{}", "mesh.cell_data.{}"]) {
      for (const path of expandPattern(tree, parsePath(pattern))) {
        assert.equal(isPattern(path), false);
        assert.notEqual(getAtPath(tree, path), undefined);
        assert.ok(matchesPattern(path, parsePath(pattern)));
      }
    }
  });

  it("expands a concrete path to itself when it exists", () => {
    assert.deepEqual(expand("blocks.[2].w"), ["blocks.[2].w"]);
    assert.deepEqual(expand("blocks.[1].w"), []);
    assert.deepEqual(expandPattern(tree, []), [[]]);
  });

  it("countMatches counts what expandPattern gives, without making the paths (run per evaluation)", () => {
    const patterns = ["mesh.cell_data.{}", "mesh.point_data.{}", "mesh.{}", "blocks.[].w", "grid.[].[]", "maps.[].{}", "maps.[].{a}", "blocks.{}", "mesh.[]", "missing.[]", "blocks.[2].w", "blocks.[1].w"];
    for (const pattern of patterns) assert.equal(countMatches(tree, parsePath(pattern)), expand(pattern).length, pattern);
    // eslint-disable-next-line no-sparse-arrays
    assert.equal(countMatches({ l: [1, , 3] }, parsePath("l.[]")), 2);
    assert.equal(countMatches({ m: {} }, parsePath("m.{constructor}")), 0);
    assert.equal(countMatches(Object.assign(Object.create({ inherited: 1 }) as object, { own: 2 }), parsePath("{}")), 0); // not a plain object
    assert.equal(countMatches(Object.assign(Object.create(null) as object, { a: 1, b: 2 }), parsePath("{}")), 2);
  });

  it("never expands into inherited properties", () => {
    assert.deepEqual(expandPattern({ m: {} }, parsePath("m.{constructor}")), []);
    assert.deepEqual(expandPattern({}, parsePath("__proto__.{}")), []);
  });

  it("matches concrete paths against patterns", () => {
    const m = (c: string, p: string): boolean => matchesPattern(parsePath(c), parsePath(p));
    assert.ok(m("mesh.cell_data.{temperature}", "mesh.cell_data.{}"));
    assert.ok(m("mesh.cell_data.{temperature}", "mesh.cell_data.{temperature}"));
    assert.ok(!m("mesh.cell_data.{temperature}", "mesh.cell_data.{pressure}"));
    assert.ok(m("blocks.[3].w", "blocks.[].w"));
    assert.ok(m("blocks.[3].w", "blocks.[3].w"));
    assert.ok(!m("blocks.[3].w", "blocks.[2].w"));
    assert.ok(!m("blocks.[3].w", "blocks.[].v"));
    assert.ok(!m("blocks.[3]", "blocks.[].w")); // lengths differ
    assert.ok(!m("blocks.[3].w", "blocks.[]"));
    assert.ok(!m("blocks.{3}", "blocks.[]")); // a key is not an index
    assert.ok(!m("blocks.[3]", "blocks.{}")); // an index is not a key
    assert.ok(!m("mesh.{points}", "mesh.points")); // a key is not a field
    assert.ok(!m("mesh.points", "mesh.{}")); // a field is not a key
    assert.ok(m("a.[]", "a.[]"));
    assert.ok(matchesPattern([], []));
  });
});

describe("paths: prototype pollution", () => {
  afterEach(() => {
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  });

  it("sets __proto__ as an own key, leaving prototypes alone", () => {
    const tree = { m: {} as Record<string, unknown> };
    const out = withLeaf(tree, parsePath("m.{__proto__}"), { polluted: true });
    assert.equal(Object.getPrototypeOf(out.m), Object.prototype);
    assert.ok(Object.hasOwn(out.m, "__proto__"));
    assert.deepEqual(Object.keys(out.m), ["__proto__"]);
    assert.equal(getAtPath(out, parsePath("m.{__proto__}.polluted")), true);
    assert.deepEqual(expandPattern(out, parsePath("m.{}")).map(formatPath), ["m.{__proto__}"]);
    assert.equal(Object.hasOwn(tree.m, "__proto__"), false);
  });

  it("does not write through __proto__ or constructor.prototype", () => {
    throwsInvalid(() => withLeaf({}, parsePath("__proto__.polluted"), true), /"__proto__" is missing/);
    throwsInvalid(() => withLeaf({}, parsePath("constructor.prototype.polluted"), true), /"constructor" is missing/);
    throwsInvalid(() => withLeaf({ m: {} }, parsePath("m.{__proto__}.polluted"), true), /"m\.\{__proto__\}" is missing/);
    const out = withLeaf({}, parsePath("__proto__"), { polluted: true });
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.ok(Object.hasOwn(out, "__proto__"));
  });

  it("copies own __proto__ keys as data, not as prototypes", () => {
    const tree = JSON.parse('{"m": {"__proto__": {"polluted": true}, "k": 1}}') as { m: Record<string, unknown> };
    const out = withLeaf(tree, parsePath("m.{k}"), 2);
    assert.equal(Object.getPrototypeOf(out.m), Object.prototype);
    assert.ok(Object.hasOwn(out.m, "__proto__"));
    assert.equal(out.m["k"], 2);
    assert.equal(out.m["__proto__"], tree.m["__proto__"]);
    assert.equal((out.m as Record<string, unknown>)["polluted"], undefined);
  });
});
