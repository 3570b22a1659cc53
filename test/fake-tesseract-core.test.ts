/**
 * The fake tesseract-core runtime of the test tree answers as the documented API says, so that tests
 * of the bridge against it mean something: health, the OpenAPI document, /apply in both array
 * encodings, 422 bodies and unwrapped outputs.
 */
import { strict as assert } from "node:assert";
import { startFakeTesseractCore, type RunningFake } from "./fixtures/tesseract-core/fake-tesseract-core";
import { MESH_STATS_OPENAPI, meshStats } from "./fixtures/tesseract-core/mesh-stats";

const base64 = (values: number[], ctor: Float64ArrayConstructor | Float32ArrayConstructor = Float64Array) => Buffer.from(new ctor(values).buffer).toString("base64");

describe("the fake tesseract-core runtime", () => {
  let fake: RunningFake;
  before(async () => (fake = await startFakeTesseractCore(meshStats())));
  after(() => fake.close());

  const apply = (inputs: unknown, accept?: string) =>
    fetch(`${fake.url}/apply`, { method: "POST", headers: { "content-type": "application/json", ...(accept ? { accept } : {}) }, body: JSON.stringify({ inputs }) });
  // As tesseract-core's Python SDK sends arrays: no object_type, base64 buffers.
  const inputs = {
    mesh: { n_points: 2, points: { shape: [2, 3], dtype: "float64", data: { buffer: base64([0, 0, 0, 2, 4, 6]), encoding: "base64" } }, cell_data: {} },
    layers: [{ weights: { shape: [2], dtype: "float32", data: { buffer: base64([0.5, 0.25], Float32Array), encoding: "base64" } }, name: "a" }],
  };

  it("health and the OpenAPI document", async () => {
    assert.deepEqual(await (await fetch(`${fake.url}/health`)).json(), { status: "ok" });
    assert.deepEqual(await (await fetch(`${fake.url}/openapi.json`)).json(), MESH_STATS_OPENAPI);
  });

  it("/apply answers the outputs unwrapped, arrays in the encoding Accept asks for", async () => {
    const json = await (await apply(inputs)).json();
    assert.deepEqual(json, { barycenter: { object_type: "array", shape: [3], dtype: "float64", data: { buffer: [1.75, 2.75, 3.75], encoding: "json" } }, count: 2 });
    const b64 = (await (await apply(inputs, "application/json+base64")).json()) as { barycenter: { data: { buffer: string; encoding: string } } };
    assert.equal(b64.barycenter.data.encoding, "base64");
    const bytes = Buffer.from(b64.barycenter.data.buffer, "base64");
    assert.deepEqual([0, 1, 2].map((i) => bytes.readDoubleLE(8 * i)), [1.75, 2.75, 3.75]);
  });

  it("422 with tesseract-core's detail list for bad input, and every /apply counted", async () => {
    const bad = await apply({ ...inputs, mesh: { ...inputs.mesh, n_points: 5 } });
    assert.equal(bad.status, 422);
    const { detail } = (await bad.json()) as { detail: { loc: unknown[]; msg: string }[] };
    assert.deepEqual(detail[0].loc, ["body", "inputs", "mesh", "n_points"]);
    assert.match(detail[0].msg, /n_points is 5 but points has 2 rows/);
    assert.equal(fake.applyCalls, 3);
  });
});
