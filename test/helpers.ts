/** Shared test data and comparisons. */
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter, once } from "node:events";
import * as net from "node:net";
import * as path from "node:path";
import { createInterface } from "node:readline";
import type * as grpc from "@grpc/grpc-js";
import pino from "pino";
import ndarray, { type NdArray } from "ndarray";
import { TesseractClientError } from "../client/errors";
import { Code, TesseractError } from "../index";
import { toFloat64 } from "../common/tensor-codec";
import { loadTesseract } from "../index";
import { TesseractRuntime } from "../server/runtime";
import type { Perturbation } from "../server/eval/evaluator";
import { shareTree } from "../server/eval/shared-tree";
import { packPerturbations, type BatchTask } from "../server/eval/worker-task";

export { sampleMeshInputs as meshInputs } from "../server/tesseracts/samples";

/** Analytic meshstats Jacobians, shape (3, N, 3): d first/d p[i,c'] = δ(i,0)δ(c,c'); d bary = δ(c,c')/N. */
export function meshJacobian(N: number, output: "first_point_coordinates" | "barycenter"): Float64Array {
  const J = new Float64Array(3 * N * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < N; i++) {
      const value = output === "barycenter" ? 1 / N : i === 0 ? 1 : 0;
      J[c * N * 3 + i * 3 + c] = value;
    }
  }
  return J;
}

/**
 * heat's one-step Jacobian (n × n, default dt) as `J` gives it: J = I + r L with r = 0.45, so 0.1 on
 * the diagonal and 0.45 beside it to rounding, and exactly 0 everywhere else.
 */
export function assertHeatOneStep(J: { get(i: number, j: number): number }, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const expected = i === j ? 0.1 : Math.abs(i - j) === 1 ? 0.45 : 0;
      const value = J.get(i, j);
      if (expected === 0) assert.equal(value, 0, `J[${i}, ${j}]`);
      else assert.ok(Math.abs(value - expected) < 1e-9, `J[${i}, ${j}] = ${value}, expected ${expected}`);
    }
  }
}

/** Copies of the leaves' data with a perturbation applied: what a test evaluator hands its function. */
export function perturbedCopies(leaves: readonly { data: Float64Array | Float32Array }[], perturbation: Perturbation): Float64Array[] {
  const xs = leaves.map((l) => Float64Array.from(l.data));
  for (const change of perturbation) {
    if ("indices" in change) change.indices.forEach((i, k) => (xs[change.leaf][i] = change.points[k]));
    else if ("values" in change) xs[change.leaf].set(change.values);
    else xs[change.leaf][change.index] = change.value;
  }
  return xs;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

export function rms(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return Math.sqrt(sum / a.length);
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = "values"): void {
  const diff = maxAbsDiff(actual, expected);
  assert.ok(diff <= tol, `${what}: max |difference| ${diff} exceeds ${tol}`);
}

export const f64 = (values: number[], shape = [values.length]): NdArray<Float64Array> => ndarray(Float64Array.from(values), shape);
export const f32 = (values: number[], shape = [values.length]): NdArray<Float32Array> => ndarray(Float32Array.from(values), shape);

/** A raw grpc-js call's failure: its code and details (`what` names the call when either differs). */
export async function fails(promise: Promise<unknown>, code: number, details: RegExp, what = "the call"): Promise<void> {
  const error = (await promise.then(
    (answer) => assert.fail(`${what}: expected ${Code[code]}, it succeeded: ${JSON.stringify(answer).slice(0, 300)}`),
    (e: grpc.ServiceError) => e,
  )) as grpc.ServiceError;
  assert.equal(error.code, code, `${what}: ${Code[error.code]}: ${error.details}`);
  assert.match(error.details, details, what);
}

/** Awaits a rejection and checks its code and message. */
export async function rejects(promise: Promise<unknown> | (() => unknown), code: Code, message: RegExp): Promise<TesseractError> {
  let error: unknown;
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof TesseractError, `expected a TesseractError, got ${String(error)}`);
  assert.equal(error.code, code, `code ${Code[error.code]} (${error.message})`);
  assert.match(error.message, message);
  return error;
}

/** Awaits a rejection from the SDK and checks its code name and (when given) its details. */
export async function clientRejects(promise: Promise<unknown>, codeName: string, details?: RegExp): Promise<TesseractClientError> {
  let error: unknown;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof TesseractClientError, `expected a TesseractClientError, got ${String(error)}`);
  assert.equal(error.codeName, codeName, `${error.codeName}: ${error.details}`);
  // The message is the code and details, and the SDK's hint where it has one ("— no server is listening …").
  if (error.message !== `${codeName}: ${error.details}`) assert.ok(error.message.startsWith(`${codeName}: ${error.details} — `), error.message);
  if (details) assert.match(error.details, details);
  return error;
}

/** A logger whose JSON lines can be awaited: `next(match)` resolves with the first later line matching. */
export class LogLines {
  private readonly events = new EventEmitter();
  readonly logger = pino({ level: "info" }, { write: (line: string) => this.events.emit("line", JSON.parse(line)) });
  next(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      const listener = (line: Record<string, unknown>) => {
        if (!match(line)) return;
        this.events.off("line", listener);
        resolve(line);
      };
      this.events.on("line", listener);
    });
  }

  /** The server's own record of a call of `rpc` ending. */
  nextCall(rpc: string): Promise<Record<string, unknown>> {
    return this.next((line) => line.msg === "call" && line.rpc === rpc);
  }
}

/**
 * A bundled Tesseract whose apply calls are counted independently of the engine's own stats. The
 * definition is copied, so the shared bundled one is never wrapped.
 */
export function counted(name: string) {
  const base = loadTesseract(name);
  const counter = { calls: 0 };
  const apply = base.definition.apply;
  const definition = {
    ...base.definition,
    apply: (inputs: unknown) => {
      counter.calls++;
      return apply(inputs);
    },
  };
  return { runtime: new TesseractRuntime(definition, __dirname), counter };
}

/** Any ndarray's values, row-major, as plain numbers. */
export const flat = (a: unknown): number[] => Array.from(toFloat64(a as NdArray<any>));

/** The built CLI (dist/cli/cli.js). */
export const CLI = path.join(__dirname, "../cli/cli.js");

export interface ServeProcess {
  child: ChildProcess;
  /** 127.0.0.1:port, from the one line serve prints. */
  address: string;
  /** Every stdout line so far (serve prints exactly one). */
  stdoutLines: string[];
  /** The last 4 000 characters of its logs (stderr). */
  stderrTail(): string;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/**
 * `tesseract-grpc serve <args>` in a child process, resolved once it prints `listening on HOST:PORT`;
 * `where` runs another copy of the CLI (an installed package's) in another folder.
 */
/** A TCP port on 127.0.0.1 that was free a moment ago (for a flag that takes no 0, such as --http-port of a child). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export async function serveProcess(args: string[], env: NodeJS.ProcessEnv = process.env, where: { cli?: string; cwd?: string } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [where.cli ?? CLI, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"], env, cwd: where.cwd });
  // JSON logs: read (the pipe must not fill up), the tail kept to explain a server that never starts.
  let stderrTail = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderrTail = (stderrTail + chunk.toString("utf8")).slice(-4000)));
  const exited = once(child, "exit") as Promise<[number | null]>;
  const lines = createInterface({ input: child.stdout! });
  const stdoutLines: string[] = [];
  lines.on("line", (line) => stdoutLines.push(line));
  const [first] = (await Promise.race([
    once(lines, "line"),
    exited.then(([code]) => assert.fail(`serve ${args.join(" ")} exited with code ${code} before listening: ${stderrTail}`)),
  ])) as [string];
  const match = /^listening on (127\.0\.0\.1:\d+)$/.exec(first);
  assert.ok(match, `first stdout line: ${first}`);
  return {
    child,
    address: match[1],
    stdoutLines,
    stderrTail: () => stderrTail,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return (await exited)[0];
    },
  };
}

/** A callback-style grpc-js unary call as a promise: `await call((cb) => client.apply(request, cb))`. */
export function call<Res>(fn: (cb: (e: grpc.ServiceError | null, r: Res) => void) => void): Promise<Res> {
  return new Promise((resolve, reject) => fn((e, r) => (e ? reject(e) : resolve(r))));
}

/** `promise`, or a failure saying `what` did not happen within `ms` (a bound on a wait, not a synchronisation). */
export async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** The polynomial fixture: f = x³ + y·sin x elementwise; its `mode` input makes apply crash, hang, stall... */
export const POLYNOMIAL = path.join(__dirname, "../../test/fixtures/polynomial/polynomial.js");

/**
 * A worker pool's batch of the polynomial at x = [1, 2], y = 0.9 (in `mode`): one evaluation, at
 * x[0] = `value`; its values are polynomialAt(value).
 */
export function polynomialBatch(job: string, value: number, mode = ""): Omit<BatchTask, "progress" | "progressEpoch" | "startedOn"> {
  polynomialRuntime ??= loadTesseract(POLYNOMIAL);
  const { schema } = polynomialRuntime;
  const fp64 = (values: number[], shape = [values.length]) => ({ datatype: 11, shape, data: Buffer.from(Float64Array.from(values).buffer) });
  const encoded = schema.inputs.type.encode({ x: fp64([1, 2]), y: fp64([0.9], []), mode }).finish();
  return {
    tesseract: POLYNOMIAL,
    job,
    inputs: shareTree(polynomialRuntime.decodeInputs({ type_url: schema.inputs.typeUrl, value: encoded })),
    inputPaths: ["x"],
    outputPaths: ["f"],
    outputsField: "jac_outputs",
    perturbations: packPerturbations([[{ leaf: 0, index: 0, value }]]),
  };
}
let polynomialRuntime: TesseractRuntime | undefined;

/** What polynomialBatch's evaluation at `value` gives. */
export const polynomialAt = (value: number): number[] => [value ** 3 + 0.9 * Math.sin(value), 2 ** 3 + 0.9 * Math.sin(2)];
