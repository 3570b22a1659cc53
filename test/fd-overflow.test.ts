/**
 * The engine never answers OK with a number it made non-finite: steps whose points or widths leave
 * FP64 are refused (INVALID_ARGUMENT naming the option, the element and the largest step that fits),
 * tangents and cotangents of any scale are contracted scaled (exact results, neither NaN nor 0), and a
 * result whose true value lies beyond FP64 is FAILED_PRECONDITION naming the entry. Through the
 * runtime, and over a real gRPC server for the status codes and messages.
 */
import { strict as assert } from "node:assert";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import ndarray from "ndarray";
import { TesseractClient as GeneratedClient, JacobianRequest, VectorJacobianProductRequest } from "../generated/tesseract/v1/tesseract";
import { Code } from "../index";
import { startServer } from "../index";
import { loadTesseract } from "../index";
import { silentLogger } from "../server/log";
import { TesseractRuntime } from "../server/runtime";
import { Algorithm, SparsityMode } from "../index";
import { call, counted, f64, rejects } from "./helpers";

const FIXTURE = path.join(__dirname, "../../test/fixtures/polynomial");
// f_i = x_i³ + y sin(x_i): df_i/dx_i = 3x_i² + y cos(x_i).
const runtime = loadTesseract(path.join(FIXTURE, "polynomial.js"));
const inputs = (x: number[], y = 0) => ({ x: f64(x), y: f64([y], []), params: {}, blocks: [], mode: "" });
const derivative = (x: number, y: number) => 3 * x * x + y * Math.cos(x);
const jacobian = (x: number[], options: object) => runtime.jacobian({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], options });

/** The polynomial fixture's schema with another apply (its output f only). */
const withApply = (apply: (i: { x: ndarray.NdArray<Float64Array> }) => unknown) => new TesseractRuntime({ ...runtime.definition, apply: apply as never }, FIXTURE);

/** f = 1.5e308 tanh(1e6 x): finite everywhere, but f(h) - f(-h) = 3e308 overflows at x = 0. */
const steep = withApply((i) => ({ f: ndarray(Float64Array.from(i.x.data, (v) => 1.5e308 * Math.tanh(1e6 * v)), [i.x.size]) }));

describe("steps whose points or widths are not finite are refused", () => {
  it("absolute eps = 1e308, central: INVALID_ARGUMENT naming eps, the element and the largest step", async () => {
    await rejects(
      jacobian([1, 2], { eps: 1e308 }),
      Code.INVALID_ARGUMENT,
      /^eps = 1e\+308 \(absolute steps, h = eps\) gives x\[0\] = 1 the step h = 1e\+308, and x \+ h = 1e\+308 \(or its distance from x\) is not a finite FP64 number; expected h at most 8\.99e\+307 here, so that x ± h and the width between them are finite: use a smaller eps$/,
    );
  });

  it("every rule's multiples are checked: forward h, Richardson 2h, adaptive 16h, stochastic ±h", async () => {
    await rejects(jacobian([1, 2], { algorithm: Algorithm.ALGORITHM_FORWARD, eps: 1e308 }), Code.INVALID_ARGUMENT, /gives x\[0\] = 1 the step h = 1e\+308, and x \+ h = 1e\+308 .* expected h at most 8\.99e\+307 here/);
    await rejects(jacobian([1, 2], { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 6e307 }), Code.INVALID_ARGUMENT, /gives x\[0\] = 1 the step h = 6e\+307, and x \+ 2h = 1\.2e\+308 .* expected h at most 4\.49e\+307 here, so that x ± 2h/);
    await rejects(jacobian([1, 2], { algorithm: Algorithm.ALGORITHM_ADAPTIVE, eps: 1e307 }), Code.INVALID_ARGUMENT, /gives x\[0\] = 1 the step h = 1e\+307, and x \+ 16h = 1\.6e\+308 .* expected h at most 5\.62e\+306 here, so that x ± 16h/);
    await rejects(jacobian([1, 2, 3], { algorithm: Algorithm.ALGORITHM_STOCHASTIC, num_samples: 2, seed: 3, eps: 1e308 }), Code.INVALID_ARGUMENT, /gives x\[0\] = 1 the step h = 1e\+308, and x [+-] h = -?1e\+308 /);
  });

  it("relative steps and eps_by_path: the step rule is described as the caller set it", async () => {
    await rejects(
      jacobian([1e10], { step_mode: 2, eps: 1e300 }),
      Code.INVALID_ARGUMENT,
      /^eps = 1e\+300 \(relative steps, h = eps · max\(\|x\|, typical magnitude 1\)\) gives x\[0\] = 10000000000 the step h = Infinity, and x \+ h = Infinity /,
    );
    await rejects(
      jacobian([1e10], { step_mode: 2, eps: 0.9, typical_magnitude: { x: 1e308 } }),
      Code.INVALID_ARGUMENT,
      /^eps = 0\.9 \(relative steps, h = eps · max\(\|x\|, typical magnitude 1e\+308\)\) gives x\[0\] = 10000000000 the step h = 9e\+307, and x \+ h = 9e\+307 \(or its distance from x\) is not a finite FP64 number; expected h at most 8\.99e\+307 here/,
    );
    await rejects(jacobian([1, 2], { eps: 1e-3, eps_by_path: { x: 1e308 } }), Code.INVALID_ARGUMENT, /^options\.eps_by_path\.\{x\} = 1e\+308 \(absolute steps, h = eps\) gives x\[0\] = 1 /);
  });

  it("one-sided stencils near a domain bound check their steps too", async () => {
    const bounded = new TesseractRuntime({ ...runtime.definition, bounds: { x: { lower: 0 } } }, FIXTURE);
    await rejects(
      bounded.jacobian({ inputs: inputs([5e-5]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e308 } }),
      Code.INVALID_ARGUMENT,
      /gives x\[0\] = 0\.00005 the step h = 1e\+308, and x \+ h = 1e\+308 \(or its distance from x\) is not a finite FP64 number/,
    );
  });

  it("an input that is NaN or ±Inf: INVALID_ARGUMENT naming it (not a step 'at most NaN')", async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const message = new RegExp(`^x\\[1\\] is ${bad}: finite differences need finite inputs$`);
      await rejects(jacobian([1, bad], {}), Code.INVALID_ARGUMENT, message);
      await rejects(runtime.jvp({ inputs: inputs([1, bad]), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1]) }, options: {} }), Code.INVALID_ARGUMENT, message);
      // Default relative steps learn the outputs' precision first; not by evaluating at such inputs.
      const noEps = new TesseractRuntime({ ...runtime.definition, finiteDifferences: undefined }, FIXTURE);
      await rejects(noEps.jacobian({ inputs: inputs([1, bad]), inputPaths: ["x"], outputPaths: ["f"], options: { step_mode: 2 } }), Code.INVALID_ARGUMENT, message);
    }
  });

  it("JVP: a step along the tangent that leaves FP64 is refused", async () => {
    // Along one element, the JVP is that element's column, refused as the Jacobian refuses it.
    await rejects(
      runtime.jvp({ inputs: inputs([1, 2]), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 0]) }, options: { eps: 1e308 } }),
      Code.INVALID_ARGUMENT,
      /^eps = 1e\+308 \(absolute steps, h = eps\) gives x\[0\] = 1 the step h = 1e\+308, and x \+ h = 1e\+308 \(or its distance from x\) is not a finite FP64 number; expected h at most 8\.99e\+307 here/,
    );
    await rejects(
      runtime.jvp({ inputs: inputs([1, 2]), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1e-300]) }, options: { eps: 1e308 } }),
      Code.INVALID_ARGUMENT,
      /^eps = 1e\+308 \(absolute steps, h = eps\) sets the step along the tangent to length 1e\+308, which takes x element 0 = 1 to 1e\+308 \(or its distance from x\) outside the finite FP64 numbers; expected steps that keep x ± t v and the width between them finite: use a smaller eps$/,
    );
    // Each point finite, but the width along v between them, summed over the elements, is not.
    await rejects(
      runtime.jvp({ inputs: inputs([1, 2]), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, 1]) }, options: { eps: 1e308 } }),
      Code.INVALID_ARGUMENT,
      /^the step along the tangent \(length 1e\+308, eps = 1e\+308 \(absolute steps, h = eps\)\) is too long for FP64: <x\+ - x-, v> is not finite; use a smaller eps$/,
    );
  });
});

describe("tangents and cotangents of any scale", () => {
  // f = x³ + y sin x ~ (125, -216, 343) here: contracted with a cotangent of 1e306 its terms overflow.
  const x = [5, -6, 7];
  const y = 0.7;
  const v = [1, -2, 0.5];
  const exactJvp = x.map((xi, i) => derivative(xi, y) * v[i]);

  for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_RICHARDSON]) {
    it(`JVP (${Algorithm[algorithm]}) of v scaled by 1e200 and 1e-170 is J v scaled alike, neither NaN nor 0`, async () => {
      for (const scale of [1, 1e200, 1e-170]) {
        const { result, errors } = await runtime.jvp({ inputs: inputs(x, y), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64(v.map((t) => t * scale)) }, options: { algorithm, eps: 1e-4 } });
        exactJvp.forEach((e, i) => {
          const got = result.f.get(i);
          assert.ok(Math.abs(got / scale - e) < 1e-6 * Math.abs(e), `scale ${scale}: (J v)[${i}] = ${got}, expected ${e * scale}`);
          if (errors) assert.ok(Math.abs(got - e * scale) <= errors.f.get(i), `scale ${scale}: error estimate ${errors.f.get(i)} does not bound ${Math.abs(got - e * scale)}`);
        });
      }
    });
  }

  it("VJP with a cotangent of 1e306 is c^T J, not NaN", async () => {
    const c = [1e306, -1e306, 5e305];
    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_RICHARDSON]) {
      const { result } = await runtime.vjp({ inputs: inputs(x, y), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64(c) }, options: { algorithm, eps: 1e-4 } });
      x.forEach((xi, i) => {
        const exact = c[i] * derivative(xi, y);
        assert.ok(Math.abs(result.x.get(i) - exact) < 1e-7 * Math.abs(exact), `${Algorithm[algorithm]}: vjp[${i}] = ${result.x.get(i)}, expected ${exact}`);
      });
    }
  });

  it("a subnormal cotangent (1e-320, three digits) gives c^T J as exactly as a subnormal can hold it", async () => {
    const { result } = await runtime.vjp({ inputs: inputs(x, y), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64([1e-320, 1e-320, 1e-320]) }, options: { eps: 1e-4 } });
    x.forEach((xi, i) => {
      const exact = 1e-320 * derivative(xi, y); // itself subnormal: within one unit of 2^-1074
      assert.ok(Math.abs(result.x.get(i) - exact) <= Number.MIN_VALUE, `vjp[${i}] = ${result.x.get(i)}, expected ${exact}`);
    });
  });

  it("a VJP whose true value is beyond FP64 is FAILED_PRECONDITION naming the element, not Inf", async () => {
    // c^T J for x[2] = 7: 1e308 · (147 + 0.7 cos 7) > 1.8e308.
    await rejects(
      runtime.vjp({ inputs: inputs(x, y), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64([1, 1, 1e308]) }, options: { eps: 1e-4 } }),
      Code.FAILED_PRECONDITION,
      /^the VJP for x\[2\] came out Infinity although every output of apply was finite: the finite-difference arithmetic overflowed FP64 \(the value, or a difference it is formed from, is beyond ±1\.8e\+308\)$/,
    );
  });

  it("a tangent or cotangent holding NaN or Inf is INVALID_ARGUMENT naming the element", async () => {
    await rejects(runtime.jvp({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], tangent: { x: f64([1, NaN, 0]) } }), Code.INVALID_ARGUMENT, /^tangent_vector\.\{x\} has NaN at flat index 1; expected finite numbers$/);
    await rejects(runtime.vjp({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64([1, 0, -Infinity]) } }), Code.INVALID_ARGUMENT, /^cotangent_vector\.\{f\} has -Infinity at flat index 2; expected finite numbers$/);
  });
});

describe("a result the engine made non-finite is an error, never OK", () => {
  it("a Jacobian entry whose difference overflows is FAILED_PRECONDITION naming the entry", async () => {
    await rejects(
      steep.jacobian({ inputs: inputs([0, 1]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } }),
      Code.FAILED_PRECONDITION,
      /^d f \(flat index 0\) \/ d x\[0\] came out Infinity although every output of apply was finite: the finite-difference arithmetic overflowed FP64/,
    );
  });

  it("the same in a stream of rows, central and forward (each row checked as it is divided)", async () => {
    const drain = async (algorithm: Algorithm) => {
      for await (const _ of steep.jacobianRows({ inputs: inputs([0, 1]), inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4, algorithm } }).rows);
    };
    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD]) {
      await rejects(drain(algorithm), Code.FAILED_PRECONDITION, /^d f \(flat index 0\) \/ d x\[0\] came out Infinity although every output of apply was finite/);
    }
  });

  it("NaN from apply itself is still the Tesseract's, reported as before", async () => {
    await rejects(
      runtime.jacobian({ inputs: { ...inputs([2, 1]), mode: "nan" }, inputPaths: ["x"], outputPaths: ["f"], options: { eps: 1e-4 } }),
      Code.FAILED_PRECONDITION,
      /^evaluation at x\[0\] \+ h failed: apply returned NaN in output f at flat index 0$/,
    );
  });

  it("stochastic with one sample has no standard error to report (not NaN)", async () => {
    const { entries } = await jacobian([1, 2, 3], { algorithm: Algorithm.ALGORITHM_STOCHASTIC, num_samples: 1, seed: 5, eps: 1e-4 });
    assert.equal(entries[0].errors, undefined);
    assert.ok(entries[0].values.every(Number.isFinite));
  });
});

describe("over gRPC", () => {
  it("status codes and messages: INVALID_ARGUMENT for an overflowing step, FAILED_PRECONDITION for an overflowing entry", async () => {
    const server = await startServer({ tesseract: steep, port: 0, logger: silentLogger });
    const client = new GeneratedClient(server.address, grpc.credentials.createInsecure());
    const x = (values: number[]) => ({ datatype: 11, shape: [values.length], data: Buffer.from(Float64Array.from(values).buffer) });
    const any = (values: number[]) => ({ type_url: "type.googleapis.com/tesseract.testing.polynomial.v1.Inputs", value: Buffer.from(steep.schema.inputs.type.encode({ x: x(values) }).finish()) });
    const expectStatus = (promise: Promise<unknown>, code: number, details: RegExp) =>
      assert.rejects(promise, (e: grpc.ServiceError) => {
        assert.equal(e.code, code, `code ${e.code}: ${e.details}`);
        assert.match(e.details, details);
        return true;
      });
    try {
      await expectStatus(
        call((cb) => client.jacobian(JacobianRequest.fromPartial({ inputs: any([1, 2]), jac_inputs: ["x"], jac_outputs: ["f"], options: { algorithm: Algorithm.ALGORITHM_RICHARDSON, eps: 1e308 } }), cb)),
        grpc.status.INVALID_ARGUMENT,
        /^eps = 1e\+308 \(absolute steps, h = eps\) gives x\[0\] = 1 the step h = 1e\+308, and x \+ 2h = Infinity \(or its distance from x\) is not a finite FP64 number; expected h at most 4\.49e\+307 here/,
      );
      await expectStatus(
        call((cb) => client.jacobian(JacobianRequest.fromPartial({ inputs: any([0, 1]), jac_inputs: ["x"], jac_outputs: ["f"], options: { eps: 1e-4 } }), cb)),
        grpc.status.FAILED_PRECONDITION,
        /^d f \(flat index 0\) \/ d x\[0\] came out Infinity although every output of apply was finite/,
      );
      await expectStatus(
        call((cb) => client.vectorJacobianProduct(VectorJacobianProductRequest.fromPartial({ inputs: any([1, 2]), vjp_inputs: ["x"], vjp_outputs: ["f"], cotangent_vector: { f: x([1, NaN]) } }), cb)),
        grpc.status.INVALID_ARGUMENT,
        /^cotangent_vector\.\{f\} has NaN at flat index 1; expected finite numbers$/,
      );
    } finally {
      client.close();
      await server.close();
    }
  });
});

// phi = <c, f> contracted per evaluation, then differenced: f0 = x0³ at x0 = 100 under c0 = 1e10
// (phi ≈ 1e16) left nothing of f1's share, and the VJP's second element was 0 for 3·1.2² = 4.32
// (Richardson and adaptive with an estimate of 1e5 to say so).
describe("a VJP differences each output before contracting it", () => {
  const x = [100, -1.2, 2.5];
  const cotangent = [1e10, 1, 0];
  const exact = x.map((v, i) => cotangent[i] * derivative(v, 0));
  for (const workers of [0, 1]) {
    // Evaluations: central 2n, forward n + 1, Richardson 4n + 9 and adaptive 12n + 9 (f(x) and the noise probe): f(x) costs none more.
    for (const [algorithm, rtol, calls] of [[Algorithm.ALGORITHM_CENTRAL, 1e-7, 6], [Algorithm.ALGORITHM_FORWARD, 1e-3, 4], [Algorithm.ALGORITHM_RICHARDSON, 1e-7, 21], [Algorithm.ALGORITHM_ADAPTIVE, 1e-7, 45]] as const) {
      it(`${Algorithm[algorithm]}, ${workers ? "in a worker" : "inline"}: a small output's share survives a large one's`, async () => {
        const separate = loadTesseract(path.join(FIXTURE, "polynomial.js"));
        await separate.useEvaluation({ workers, cacheBytes: 0 });
        try {
          const { result, stats } = await separate.vjp({ inputs: inputs(x), inputPaths: ["x"], outputPaths: ["f"], cotangent: { f: f64(cotangent) }, options: { algorithm, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } });
          exact.forEach((e, i) => assert.ok(Math.abs(result.x.get(i) - e) <= rtol * Math.abs(e), `vjp[${i}] = ${result.x.get(i)}, expected ${e}`));
          assert.equal(stats.apply_calls, calls);
        } finally {
          await separate.close();
        }
      });
    }
  }

  it("a cotangent that does not fit the outputs is refused after one evaluation, every rule (central took a pair), and f(x) where that one was not f(x)", async () => {
    const { runtime: vector, counter } = counted("vectoradd");
    await vector.useEvaluation({ workers: 0, cacheBytes: 0 });
    const inputs = { a: f64([1, 2, 3]), b: f64([0, 0, 0]), s: f64([1], []), normalize: false };
    for (const algorithm of [Algorithm.ALGORITHM_CENTRAL, Algorithm.ALGORITHM_FORWARD, Algorithm.ALGORITHM_RICHARDSON, Algorithm.ALGORITHM_ADAPTIVE]) {
      counter.calls = 0;
      await rejects(vector.vjp({ inputs, inputPaths: ["a"], outputPaths: ["result"], cotangent: { result: f64([1, 1]) }, options: { algorithm, sparsity_mode: SparsityMode.SPARSITY_MODE_DENSE } }), Code.INVALID_ARGUMENT, /cotangent_vector\.\{result\} has shape \[2\], expected \[3\]/);
      // Central's first evaluation is x + h: f(x) tells that the outputs kept their shape, so the cotangent is at fault.
      assert.equal(counter.calls, algorithm === Algorithm.ALGORITHM_CENTRAL ? 2 : 1, Algorithm[algorithm]);
    }
  });

  it("an output the cotangent leaves out adds nothing, even where its difference overflows (0 · Inf was NaN, refused)", async () => {
    // steep: f = 1.5e308 tanh(1e6 x), so f(x + h) - f(x - h) overflows at x = 0; g = exp(y) + Σw².
    const { result } = await runtime.vjp({ inputs: { ...inputs([0, 0.5], 0.4), mode: "steep" }, inputPaths: ["x", "y"], outputPaths: ["f", "g"], cotangent: { f: f64([0, 0]), g: f64([1], []) }, options: { eps: 1e-4 } });
    assert.deepEqual(Array.from(result.x.data as Float64Array), [0, 0]);
    assert.ok(Math.abs(result.y.get(0) - Math.exp(0.4)) < 1e-7, `d g / d y = ${result.y.get(0)}`);
  });
});
