/**
 * The CLI's forms without a server: compact arrays, enums by name, finite-difference options from
 * the payload and the flags, addresses, the messages with a next step and the stats line.
 * (test/cli.test.ts runs the same paths end to end, once each.)
 */
import { strict as assert } from "node:assert";
import { status } from "@grpc/grpc-js";
import { Command } from "commander";
import { withDefaultPort } from "../client/address";
import { explainError, statsLine } from "../client/cli-messages";
import { toClientError } from "../client/errors";
import { abstractArrayFromJson, arrayFromJson, enumsByName } from "../client/json-form";
import { integer, mergeOptionFlags, optionFlags, optionsFromJson, optionsToJson, positiveNumber } from "../client/options-json";
import { Algorithm, StepMode, StochasticEstimator } from "../generated/tesseract/v1/algorithm";
import { FiniteDifferenceOptions } from "../generated/tesseract/v1/tesseract";
import { loadRoot } from "../server/schema/schema";
import { flat } from "./helpers";

describe("CLI forms", () => {
  describe('compact arrays: {"dtype", "data", "shape"?}', () => {
    it("the dtype's typed array, the shape from the nesting or from \"shape\"", () => {
      const cases: [object, string, number[], number[]][] = [
        [{ dtype: "int32", data: [0, 1, 2] }, "Int32Array", [3], [0, 1, 2]],
        [{ dtype: "int32", shape: [3], data: [[0], [1], [2]] }, "Int32Array", [3], [0, 1, 2]],
        [{ dtype: "uint8", shape: [2, 2], data: [1, 2, 3, 4] }, "Uint8Array", [2, 2], [1, 2, 3, 4]],
        [{ dtype: "bool", data: [true, false, true] }, "BoolArray", [3], [1, 0, 1]],
        [{ dtype: "int64", data: [[1, 2], [3, 4]] }, "BigInt64Array", [2, 2], [1, 2, 3, 4]],
        [{ dtype: "float32", data: 2.5 }, "Float32Array", [], [2.5]],
      ];
      for (const [json, type, shape, values] of cases) {
        const a = arrayFromJson(json, "x");
        assert.deepEqual([a.data.constructor.name, a.shape, flat(a)], [type, shape, values], JSON.stringify(json));
      }
    });

    it("refusals name the field and what was expected", () => {
      assert.throws(() => arrayFromJson({ dtype: "int32", shape: [4], data: [0, 1, 2] }, "x"), /^TesseractError: x\.data\.buffer has 3 values, expected 4 for shape \[4\]$/);
      assert.throws(() => arrayFromJson({ dtype: "int32", data: [0, 1], strides: [1] }, "x"), /x\.strides: not a key of the compact array form \{"dtype", "data", "shape"\?\}/);
      assert.throws(() => arrayFromJson({ dtype: "int33", data: [0] }, "x"), /x\.dtype is "int33"; expected one of bool, uint8/);
      assert.throws(() => arrayFromJson({ dtype: "int32", data: [0.5] }, "x"), /element 0 is 0\.5, expected an integer \(dtype int32\)/);
      assert.throws(() => arrayFromJson({ dtype: "int32", data: [[0, 1], [2]] }, "x"), /x\.data: ragged nested list/);
      // Values the dtype cannot hold were written as they came: 1e300 became Infinity, 300 became 44.
      assert.throws(() => arrayFromJson({ dtype: "float32", data: [1, 1e300] }, "x"), /x\.data\.buffer element 1 is 1e\+300, which dtype float32 cannot hold/);
      assert.throws(() => arrayFromJson({ dtype: "uint8", data: [300] }, "x"), /element 0 is 300, which dtype uint8 cannot hold/);
      assert.throws(() => arrayFromJson({ dtype: "int32", data: [2 ** 31] }, "x"), /element 0 is 2147483648, which dtype int32 cannot hold/);
      assert.throws(() => arrayFromJson({ dtype: "uint64", data: [-1] }, "x"), /element 0 is -1, which dtype uint64 cannot hold/);
      assert.deepEqual(Array.from(arrayFromJson({ dtype: "float32", data: [3.4e38, 1e-50] }, "x").data), [Math.fround(3.4e38), 0], "within float32's range: rounded as numpy would");
      assert.deepEqual(Array.from(arrayFromJson({ dtype: "int8", data: [-128, 127] }, "x").data), [-128, 127]);
      // JSON.parse reads 1e999 as Infinity: a nested list or a bare number took it (apply answered OK), as a dtyped array did.
      const huge = JSON.parse('{"list": [[1, 1e999]], "scalar": -1e999, "typed": {"dtype": "float64", "data": [1e999]}}');
      assert.throws(() => arrayFromJson(huge.list, "x"), /^TesseractError: x: element 1 is Infinity \(a number beyond ±1\.8e308\), expected a finite number$/);
      assert.throws(() => arrayFromJson(huge.scalar, "x"), /^TesseractError: x: element 0 is -Infinity \(a number beyond ±1\.8e308\), expected a finite number$/);
      assert.throws(() => arrayFromJson(huge.typed, "x"), /x\.data\.buffer element 0 is Infinity \(a number beyond ±1\.8e308\), expected a finite number$/);
    });
  });

  it("an object that is none of a tensor's forms says the field is a tensor and lists its forms, quoting the value clipped (it read \"x.shape must be a list…\")", () => {
    const forms = /is none of its forms: a nested list \(\[1, 2, 3\]\), \{"dtype": "int32", "data": \[0, 1, 2\]\} \("shape"\? when the nesting does not give it\) or tesseract-core's array object \{"object_type"\?: "array", "shape", "dtype", "data": \{"buffer", "encoding"\}\}/;
    assert.throws(() => arrayFromJson({ b: [1] }, "inputs.a"), (e: Error) => {
      assert.match(e.message, /^inputs\.a: a tensor field, and \{"b":\[1\]\} is none of its forms: /);
      assert.match(e.message, forms);
      return true;
    });
    assert.throws(() => arrayFromJson({}, "inputs.a"), /^TesseractError: inputs\.a: a tensor field, and \{\} is none of its forms:/);
    assert.throws(() => arrayFromJson({ shape: [1], dtype: "float64", data: { buffer: [1], encoding: "json" }, b: 1 }, "inputs.a"), /^TesseractError: inputs\.a: a tensor field, and \{"shape".* is none of its forms:/);
    // Clipped: a big object is not echoed whole.
    assert.throws(() => arrayFromJson({ b: "x".repeat(5000) }, "inputs.a"), (e: Error) => e.message.length < 800 && /… \(\d+ characters\) is none of its forms/.test(e.message));
    // abstract-eval's form too, which lists {"shape", "dtype"}.
    assert.throws(() => abstractArrayFromJson({ b: [1] }, "inputs.a"), /^TesseractError: inputs\.a: a tensor field, and \{"b":\[1\]\} is none of its forms: .*or \{"shape", "dtype"\} \(its shape and dtype alone\)/);
    // An array object that lacks a key still says which.
    assert.throws(() => arrayFromJson({ dtype: "float64", data: { buffer: [1], encoding: "json" } }, "inputs.a"), /^TesseractError: inputs\.a\.shape is missing/);
  });

  it("enumsByName: enum fields of a decoded tree by name, nested messages too", () => {
    const type = loadRoot(["tesseract/examples/meshstats/v1/meshstats.proto"]).lookupType("tesseract.examples.meshstats.v1.Inputs");
    assert.deepEqual(enumsByName(type, { fd_algorithm: 4, mesh: { n_points: 2 } }), { fd_algorithm: "ALGORITHM_RICHARDSON", mesh: { n_points: 2 } });
    assert.deepEqual(enumsByName(type, { fd_algorithm: 42 }), { fd_algorithm: 42 }, "a number the enum lacks stays a number");
  });

  describe("finite-difference options", () => {
    it("every enum value by short name, proto name (either case of separator) or number", () => {
      const cases: [object, Partial<FiniteDifferenceOptions>][] = [
        [{ algorithm: "central" }, { algorithm: Algorithm.ALGORITHM_CENTRAL }],
        [{ algorithm: "forward" }, { algorithm: Algorithm.ALGORITHM_FORWARD }],
        [{ algorithm: "stochastic" }, { algorithm: Algorithm.ALGORITHM_STOCHASTIC }],
        [{ algorithm: "richardson" }, { algorithm: Algorithm.ALGORITHM_RICHARDSON }],
        [{ algorithm: "Adaptive" }, { algorithm: Algorithm.ALGORITHM_ADAPTIVE }],
        [{ algorithm: "ALGORITHM_RICHARDSON" }, { algorithm: Algorithm.ALGORITHM_RICHARDSON }],
        [{ algorithm: 2 }, { algorithm: Algorithm.ALGORITHM_FORWARD }],
        [{ step_mode: "relative" }, { step_mode: StepMode.STEP_MODE_RELATIVE }],
        [{ stepMode: "STEP_MODE_ABSOLUTE" }, { step_mode: StepMode.STEP_MODE_ABSOLUTE }],
        [{ stochastic_estimator: "least-squares" }, { stochastic_estimator: StochasticEstimator.STOCHASTIC_ESTIMATOR_LEAST_SQUARES }],
        [{ stochastic_estimator: "least_squares" }, { stochastic_estimator: StochasticEstimator.STOCHASTIC_ESTIMATOR_LEAST_SQUARES }],
        [{ stochastic_estimator: "spsa" }, { stochastic_estimator: StochasticEstimator.STOCHASTIC_ESTIMATOR_SPSA }],
        [{ eps: 1e-3, num_samples: 4, seed: "12" }, { eps: 1e-3, num_samples: 4, seed: 12 }],
        [{ eps_by_path: { "mesh.points": 1e-4 }, typicalMagnitude: { x: 2 } }, { eps_by_path: { "mesh.points": 1e-4 }, typical_magnitude: { x: 2 } }],
      ];
      for (const [json, options] of cases) assert.deepEqual(optionsFromJson(json), options, JSON.stringify(json));
    });

    it("unknown options and values are refused, naming what exists", () => {
      assert.throws(() => optionsFromJson({ algorithm: "backward" }), /^TesseractError: options\.algorithm: unknown value "backward"; expected one of central, forward, stochastic, richardson, adaptive$/);
      assert.throws(() => optionsFromJson({ algorithm: -1 }), /options\.algorithm: unknown value -1/);
      assert.throws(() => optionsFromJson({ algoritm: "central" }), /^TesseractError: options\.algoritm: no such option; options: algorithm, eps, num_samples, seed, eps_by_path, step_mode, typical_magnitude, stochastic_estimator/);
      assert.throws(() => optionsFromJson({ step_mode: "sideways" }), /options\.step_mode: unknown value "sideways"; expected one of absolute, relative$/);
      assert.throws(() => optionsFromJson({ eps: 0 }), /options\.eps: expected a positive number, got 0/);
      assert.throws(() => optionsFromJson({ eps_by_path: { x: -1 } }), /options\.eps_by_path\.\{x\}: expected a positive number, got -1/);
      assert.throws(() => optionsFromJson(JSON.parse('{"eps": 1e999}')), /options\.eps: expected a positive number, got Infinity \(a number beyond ±1\.8e308\)$/);
      assert.throws(() => optionsFromJson({ num_samples: "many" }), /options\.num_samples: expected a whole number from 1 to 4294967295, got "many"/);
      assert.equal(optionsFromJson({ num_samples: "12" }).num_samples, 12);
      assert.throws(() => optionsFromJson("richardson"), /options: expected an object such as \{"algorithm": "richardson", "eps": 1e-6\}/);
      // A seed beyond 2^53 became a client-side INTERNAL ("invalid uint64: 1e+30").
      for (const seed of [1e30, -1, 1.5, "0x10", "12a"]) assert.throws(() => optionsFromJson({ seed }), new RegExp(`^TesseractError: options\\.seed: ${JSON.stringify(JSON.stringify(seed)).slice(1, -1).replace(/[.+]/g, "\\$&")} is not a seed; expected a whole number from 0 to 9007199254740991$`));
      assert.deepEqual([optionsFromJson({ seed: 7 }).seed, optionsFromJson({ seed: "9007199254740991" }).seed], [7, 9007199254740991]);
      assert.throws(() => mergeOptionFlags({}, { seed: "1e30" }), /^TesseractError: --seed: "1e30" is not a seed/);
      // Flags' numbers are decimal: Number() would take "0x10" as 16 and " 1e-3 " as 0.001.
      for (const text of ["0x10", "0b1", " 1e-3 ", "Infinity", "", "-1", "0"]) assert.throws(() => positiveNumber(text), new RegExp(`expected a positive number, got "${text.replace(/[.+]/g, "\\$&")}"`));
      assert.deepEqual(["1e-6", ".5", "3.", "2E+2"].map(positiveNumber), [1e-6, 0.5, 3, 200]);
      // Whole numbers too: an empty --port was 0 (a free port), "0x10" 16.
      for (const text of ["0x10", " 5", "", "2.5", "-1", "1e300"]) assert.throws(() => integer(0)(text), new RegExp(`expected a whole number of at least 0, got "${text.replace(/[.+]/g, "\\$&")}"`));
      assert.deepEqual(["0", "8", "1e3", "2.0"].map(integer(0)), [0, 8, 1000, 2]);
      assert.throws(() => integer(1, { alternative: '"auto" or ' })("0"), /^InvalidArgumentError: expected "auto" or a whole number of at least 1, got "0"$/);
      assert.throws(() => integer(0, { max: 65535 })("65536"), /^InvalidArgumentError: expected a whole number from 0 to 65535, got "65536"$/);
      // num_samples is a uint32: beyond, the client's serializer failed (INTERNAL: invalid uint32).
      assert.throws(() => optionFlags(false).find((o) => o.long === "--num-samples")!.parseArg!("99999999999", undefined), /expected a whole number from 1 to 4294967295, got "99999999999"/);
      assert.throws(() => optionsFromJson({ num_samples: 99999999999 }), /^TesseractError: options\.num_samples: expected a whole number from 1 to 4294967295, got 99999999999$/);
      assert.equal(optionsFromJson({ num_samples: 4294967295 }).num_samples, 4294967295);
      assert.throws(() => optionFlags(false).find((o) => o.long === "--eps-by-path")!.parseArg!("x=0x10", undefined), /expected INPUT_PATH=POSITIVE_NUMBER/);
    });

    it("flags override the payload, field by field; per-path flags add entries", async () => {
      const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
      for (const option of optionFlags(true)) program.addOption(option);
      program.parse(["--algorithm", "adaptive", "--step-mode", "relative", "--eps-by-path", "x=0.1", "--eps-by-path", "y.{a=b}=0.2", "--typical-magnitude", "x=3", "--num-samples", "4", "--seed", "9"], { from: "user" });
      const merged = mergeOptionFlags(optionsFromJson({ algorithm: "central", eps: 1e-3, eps_by_path: { z: 1e-5, x: 1 } }), program.opts());
      assert.deepEqual(merged, {
        algorithm: Algorithm.ALGORITHM_ADAPTIVE,
        eps: 1e-3,
        step_mode: StepMode.STEP_MODE_RELATIVE,
        eps_by_path: { z: 1e-5, x: 0.1, "y.{a=b}": 0.2 },
        typical_magnitude: { x: 3 },
        num_samples: 4,
        seed: 9,
      });
      const choices = Object.fromEntries(optionFlags(false).filter((o) => o.argChoices).map((o) => [o.long, o.argChoices]));
      assert.deepEqual(choices, { "--algorithm": ["central", "forward", "stochastic", "richardson", "adaptive"], "--step-mode": ["absolute", "relative"], "--stochastic-estimator": ["spsa", "least-squares"], "--sparsity-mode": ["dense", "detect"] });
      assert.throws(() => program.parse(["--eps-by-path", "x"], { from: "user" }), /expected INPUT_PATH=POSITIVE_NUMBER \(e\.g\. --eps-by-path mesh\.points=1e-6\), got "x"/);
    });

    it("optionsToJson: enum values by proto name, for printing", () => {
      assert.deepEqual(optionsToJson(FiniteDifferenceOptions.fromPartial({ algorithm: Algorithm.ALGORITHM_FORWARD, eps: 1e-6 })), {
        algorithm: "ALGORITHM_FORWARD",
        eps: 1e-6,
        num_samples: undefined,
        seed: undefined,
        eps_by_path: {},
        step_mode: "STEP_MODE_UNSPECIFIED",
        typical_magnitude: {},
        stochastic_estimator: "STOCHASTIC_ESTIMATOR_UNSPECIFIED",
        sparsity_mode: "SPARSITY_MODE_UNSPECIFIED",
      });
    });
  });

  it("addresses: port 50051 added when none is named (grpc-js would dial 443)", () => {
    const cases: [string, string][] = [
      ["localhost", "localhost:50051"],
      ["10.0.0.5", "10.0.0.5:50051"],
      ["localhost:6000", "localhost:6000"],
      ["[::1]", "[::1]:50051"],
      ["[::1]:6000", "[::1]:6000"],
      ["::1", "[::1]:50051"],
      ["dns:///apply.example:443", "dns:///apply.example:443"],
      ["ipv4:10.0.0.1:1,10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2"],
      ["unix:/tmp/tesseract.sock", "unix:/tmp/tesseract.sock"],
    ];
    for (const [given, dialled] of cases) assert.equal(withDefaultPort(given), dialled, given);
  });

  describe("messages", () => {
    // As a failed call reaches the CLI: grpc-js's status, through the SDK's toClientError.
    const error = (code: number, details: string) => toClientError({ code, details });

    it("UNAVAILABLE with the next step: start a server, check the host, drop TLS", () => {
      const refused = "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:50051. Resolution note: ";
      assert.equal(explainError(error(status.UNAVAILABLE, refused), "127.0.0.1:50051"), "UNAVAILABLE: no server at 127.0.0.1:50051 (connection refused) — start one with `tesseract-grpc serve meshstats` (or your own Tesseract), or point --address at a running one");
      assert.equal(explainError(error(status.UNAVAILABLE, "Name resolution failed for target dns:nohost.invalid:50051"), "nohost.invalid:50051"), "UNAVAILABLE: cannot resolve the host of nohost.invalid:50051 — check --address (HOST:PORT)");
      assert.equal(explainError(error(status.UNAVAILABLE, "Name resolution failed for target dns:https://tess.example"), "https://tess.example"), 'UNAVAILABLE: cannot resolve the host of https://tess.example — an address is HOST:PORT, without "https://": tess.example:50051 (TLS: --tls)');
      assert.equal(
        explainError(error(status.UNAVAILABLE, "No connection established. Last error: Failed to connect (2026-01-01T00:00:00.000Z). Resolution note: "), "h:1"),
        "UNAVAILABLE: h:1 closed the connection before gRPC began — a TLS server needs --tls, with --tls-ca naming the CA that signed its certificate (under mutual TLS, with --tls-cert and --tls-key, a certificate the server trusts); a plaintext server needs no --tls",
      );
      // A server with mutual TLS: OpenSSL's alert, with a line break, was shown whole, asking whether TLS was wanted at all.
      const alert = (what: string, n: number) => `No connection established. Last error: 80DCE2532F7F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert ${what}:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number ${n}\n (2026-01-01T00:00:00.000Z)`;
      assert.equal(explainError(error(status.UNAVAILABLE, alert("certificate required", 116)), "h:1"), "UNAVAILABLE: h:1 requires a client certificate (mutual TLS) — pass --tls-cert and --tls-key, a certificate signed by a CA the server trusts (its --tls-client-ca)");
      assert.equal(explainError(error(status.UNAVAILABLE, alert("unknown ca", 48)), "h:1"), "UNAVAILABLE: h:1 refused the client certificate — pass one (--tls-cert, --tls-key) signed by a CA the server trusts (its --tls-client-ca)");
      assert.equal(
        explainError(error(status.UNAVAILABLE, "No connection established. Last error: Error: unable to verify the first certificate"), "h:1"),
        "UNAVAILABLE: h:1's certificate is not trusted — name the CA that signed it with --tls-ca (and connect by a host name the certificate names)",
      );
      assert.equal(
        explainError(error(status.UNAVAILABLE, "No connection established. Last error: Protocol error (2026-01-01T00:00:00.000Z). Resolution note: "), "h:1"),
        "UNAVAILABLE: h:1 is no gRPC server (it answered HTTP/1) — point --address at the gRPC port, not the REST API's (--http-port)",
      );
      // An UNAVAILABLE the server answered itself (the runtime it bridges is down) is not about this connection.
      const bridged = "evaluation at x[2] - h failed: no tesseract-core runtime answered POST /apply (http://127.0.0.1:8301: ECONNREFUSED)";
      assert.equal(explainError(error(status.UNAVAILABLE, bridged), "h:1"), `UNAVAILABLE: ${bridged}`);
      // The SDK's own message drops grpc-js's empty tail too, and says what to do; not for the server's own UNAVAILABLE.
      assert.equal(
        error(status.UNAVAILABLE, refused).message,
        "UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:50051 — no server is listening at 127.0.0.1:50051: start one (npx tesseract-grpc serve meshstats, or your own Tesseract), or connect to the address of a running one",
      );
      assert.equal(error(status.UNAVAILABLE, bridged).message, `UNAVAILABLE: ${bridged}`);
      // The SDK and the CLI read grpc-js's words alike (client/errors.ts, connectionProblem): a host that does not resolve too.
      assert.equal(
        error(status.UNAVAILABLE, "Name resolution failed for target dns:nohost.invalid:50051").message,
        "UNAVAILABLE: Name resolution failed for target dns:nohost.invalid:50051 — the host name does not resolve: check the address (HOST:PORT)",
      );
    });

    it("a connection lost during a call, in each of grpc-js's words for it: lost, and what to do (the CLI asked whether a server listened, with TLS if and only if asked; the SDK said nothing)", () => {
      // What grpc-js 1.14 reports when the server's process is killed or its socket closed, when the
      // socket is reset, and when the server closes the connection with GOAWAY INTERNAL_ERROR.
      const lost: [number, string][] = [
        [status.UNAVAILABLE, "Connection dropped"],
        [status.UNAVAILABLE, "read ECONNRESET"],
        [status.INTERNAL, "Received RST_STREAM with code 2 triggered by internal client error: Session closed with error code 2"],
      ];
      const todo = "retry it (the server may have restarted or crashed: its log says which)";
      for (const [code, words] of lost) {
        const name = status[code];
        assert.equal(explainError(error(code, words), "h:1"), `${name}: ${words} — the connection to h:1 was lost during the call: ${todo}`);
        const fromCall = toClientError({ code, details: words }, status.UNKNOWN, { address: "h:1", progress: "after the header and 5 of the 900 rows" });
        assert.equal(fromCall.message, `${name}: ${words} — the connection to h:1 was lost during the call, after the header and 5 of the 900 rows: ${todo}`);
        assert.equal(explainError(fromCall, "h:1"), fromCall.message, "the CLI says what the SDK knows");
      }
      // Not lost: a connection that was never made, and a stream the server reset on a connection that stays.
      assert.equal(explainError(error(status.UNAVAILABLE, "No connection established. Last error: read ECONNRESET"), "h:1"), "UNAVAILABLE: No connection established. Last error: read ECONNRESET — is a tesseract-grpc server listening at h:1, with TLS if and only if you asked for it?");
      assert.equal(error(status.INTERNAL, "Received RST_STREAM with code 2 (Internal server error)").message, "INTERNAL: Received RST_STREAM with code 2 (Internal server error)");
    });

    it("a client deadline: what it means, not grpc-js's internals", () => {
      const internals = "Deadline exceeded after 0.061s,name resolution: 0.039s,metadata filters: 0.001s,LB pick: 0.002s,remote_addr=127.0.0.1:50051";
      assert.equal(explainError(error(status.DEADLINE_EXCEEDED, internals), "a"), "DEADLINE_EXCEEDED: no answer within the deadline (--deadline) — allow more time, or ask for less work");
      assert.equal(explainError(error(status.DEADLINE_EXCEEDED, "the call's deadline passed"), "a"), "DEADLINE_EXCEEDED: the call's deadline passed");
    });

    it("a server's message with control characters: escaped, so it cannot drive the terminal", () => {
      assert.equal(explainError(error(status.UNKNOWN, "apply failed with HTTP 500: \u0000\u001b[31mred\r\nnext\tline"), "a"), "UNKNOWN: apply failed with HTTP 500: \\u0000\\u001b[31mred\\u000d\nnext\tline");
    });

    it("a wrong datatype, named as numpy names it: how to write that array (float64: a nested list)", () => {
      assert.match(explainError(error(status.INVALID_ARGUMENT, "mesh.cell_connectivity has datatype DATA_TYPE_FP64, expected DATA_TYPE_INT32"), "a"), /^INVALID_ARGUMENT: mesh\.cell_connectivity has datatype float64, expected int32 — a nested list or a number is float64; write it as \{"dtype": "int32", "data": \.\.\.\} with the same list or number/);
      assert.match(explainError(error(status.INVALID_ARGUMENT, "x has datatype DATA_TYPE_FP64, expected DATA_TYPE_FP32"), "a"), /\{"dtype": "float32"/);
      // A float32 array where float64 is expected had no hint at all.
      assert.equal(
        explainError(error(status.INVALID_ARGUMENT, "mesh.points has datatype DATA_TYPE_FP32, expected DATA_TYPE_FP64"), "a"),
        'INVALID_ARGUMENT: mesh.points has datatype float32, expected float64 — write it as a nested list or a number (float64), or with {"dtype": "float64"} in place of "float32"',
      );
      assert.equal(explainError(error(status.INVALID_ARGUMENT, "x is missing: expected a DATA_TYPE_FP64 tensor"), "a"), "INVALID_ARGUMENT: x is missing: expected a float64 tensor");
      // The caller's own text, quoted or a key in braces, stays as written.
      assert.equal(
        explainError(error(status.INVALID_ARGUMENT, 'm.{DATA_TYPE_INT64}.dtype is "DATA_TYPE_FP32"; expected DATA_TYPE_FP64'), "a"),
        'INVALID_ARGUMENT: m.{DATA_TYPE_INT64}.dtype is "DATA_TYPE_FP32"; expected float64',
      );
      assert.equal(explainError(new Error("payload is not valid JSON: …"), "a"), "payload is not valid JSON: …");
    });

    it("statsLine: apply calls and time, then adjusted steps and any other stats the server set", () => {
      assert.equal(statsLine({ apply_calls: 18, wall_seconds: 0.0123456, adjusted_steps: [], column_groups: 0, sparsity_source: "" }), "stats: 18 apply calls in 0.0123 s");
      const more = { apply_calls: 4, wall_seconds: 1, adjusted_steps: ["x[0]: one ulp"], column_groups: 3, sparsity_source: "request" };
      assert.equal(statsLine({ ...more, column_groups: 9, sparsity_source: "detected, failed verification: dense" }), "stats: 4 apply calls in 1.00 s; adjusted steps: x[0]: one ulp; sparsity: detected, failed verification: dense");
      assert.equal(statsLine(more), 'stats: 4 apply calls in 1.00 s; adjusted steps: x[0]: one ulp; 3 column groups (sparsity: request)');
      assert.equal(statsLine({ ...more, apply_calls: 1, adjusted_steps: [], column_groups: 1, sparsity_source: "detected" }), "stats: 1 apply call in 1.00 s; 1 column group (sparsity: detected)");
    });
  });
});
