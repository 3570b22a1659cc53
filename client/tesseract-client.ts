/**
 * The typed client of one Tesseract. `I` and `O` are the ts-proto types of its input and output
 * messages; every method takes and returns them with each Tensor replaced by an ndarray (`Arrays<T>`),
 * and every failure rejects with a TesseractClientError.
 *
 *   const client = new TesseractClient("127.0.0.1:50051", { inputs: Inputs, outputs: Outputs, outputDatatypes: { statistics: { barycenter: "float64" } } });
 *   const { statistics } = await client.apply(inputs);             // statistics.barycenter: NdArray<Float64Array>
 *   const result = await client.jacobian({ inputs, inputPaths: ["mesh.points"], outputPaths: ["statistics.barycenter"] });
 *   result.block("statistics.barycenter", "mesh.points"); result.stats.apply_calls;
 *
 * As in connect-es, a call takes one request object, then optional `{ deadline, metadata, signal }`:
 * the gradient methods take `{ inputs, inputPaths, outputPaths, options? }` (plus `tangent` or
 * `cotangent`); `apply` and `abstractEval` take the Tesseract's inputs, their whole request.
 *
 * The Any type URLs name the messages: `types.inputType`/`outputType` when given, else the names
 * ts-proto writes into the generated message objects (`$type`, with `outputTypeAnnotations=static-only`).
 * Before the first call that sends inputs, one Describe (cached; a failure is not) checks that the
 * server's Tesseract takes and returns exactly those messages: FAILED_PRECONDITION naming both
 * otherwise, rather than inputs encoded as one message and decoded by the server as another.
 */
import { DEFAULT_MAX_MESSAGE_BYTES, FLOW_CONTROL_WINDOW_BYTES } from "../common/transport-defaults";
import * as grpc from "@grpc/grpc-js";
import type { NdArray } from "ndarray";
import type { Arrays } from "../common/tree-types";
import { emptyRecord } from "../common/records";
import { packAny, unpackAny, type MessageFns } from "./any";
import { callError, callSignal, cancelCall, cancelledError, ClientClosed, fixedDeadline, toGrpcOptions, toMetadata, unaryCall, waitUnder, type CallOptions, type UnaryMethod } from "./call";
import { inSdkTerms, TesseractClientError, toClientError } from "./errors";
import { checkClientArguments, inputsObject, isString, readCallOptions, readRequest } from "./arguments";
import { withDefaultPort } from "./address";
import { clip, quote } from "../common/errors";
import type { Any } from "../generated/google/protobuf/any";
import type { Tensor } from "../generated/tesseract/v1/tensor";
import {
  FiniteDifferenceOptions as FiniteDifferenceOptionsFns,
  TesseractClient as GeneratedTesseractClient,
  type AbstractEvalRequest,
  type AbstractEvalResponse,
  type ApplyRequest,
  type ApplyResponse,
  type CheckGradientsRequest as CheckGradientsMessage,
  type CheckGradientsResponse,
  type DescribeRequest,
  type DescribeResponse,
  type EvaluationStats,
  type FiniteDifferenceOptions,
  type JacobianRequest,
  type JacobianResponse,
  type JacobianRowsResponse,
  type JacobianVectorProductRequest,
  type JacobianVectorProductResponse,
  type PathShape,
  type SparsityPattern,
  type VectorJacobianProductRequest,
  type VectorJacobianProductResponse,
} from "../generated/tesseract/v1/tesseract";
import { checkHealth, healthClient, type ServingStatus } from "./health";
import { tlsCredentials, type ClientTls } from "./tls";
import { RowsProgress, toRowsEvent, type JacobianRowsEvent } from "./rows";
import { JacobianResult, NO_STATS, VectorProductResult, type NestedJacobian } from "./results";
import { checkDatatypes, type DatatypeSpec, type ExactSpec, type TypedArrays } from "./datatypes";
import { fp64Array, fp64Map, tensorMap, type AbstractArrays } from "./tree";

// The same message limit and receive window as the server's (common/transport-defaults.ts).
export { DEFAULT_MAX_MESSAGE_BYTES, FLOW_CONTROL_WINDOW_BYTES };

export interface TesseractTypes<I, O, D extends DatatypeSpec<O> = {}> {
  /** The generated message objects, e.g. `Inputs` and `Outputs` from the Tesseract's generated module. */
  inputs: MessageFns<I>;
  outputs: MessageFns<O>;
  /** Full message names ("tesseract.examples.meshstats.v1.Inputs"); unset: the generated objects' `$type`. */
  inputType?: string;
  outputType?: string;
  /**
   * The datatypes of output tensors, as the schema states them (`{ statistics: { barycenter: "float64" } }`):
   * `apply` then returns those fields as required ndarrays of that type (`NdArray<Float64Array>`) and
   * checks each response against them (FAILED_PRECONDITION naming the field otherwise).
   */
  outputDatatypes?: D & ExactSpec<D, DatatypeSpec<O>>;
}

/** What `apply` returns: every Tensor an ndarray; those `outputDatatypes` names typed by it, and required. */
export type ApplyOutputs<O, D> = keyof D extends never ? Arrays<O> : TypedArrays<O, D>;

export interface TesseractClientOptions {
  /** Default: insecure (plaintext), as for a server on 127.0.0.1, or TLS from `tls`. */
  credentials?: grpc.ChannelCredentials;
  /** TLS from PEM contents (`tlsCredentials`): `{}` for the system's roots, `ca`, and `cert`+`key` for mutual TLS. Not with `credentials`. */
  tls?: ClientTls;
  /** Receive and send limit of the channel (grpc.max_receive/send_message_length); default 64 MiB. */
  maxMessageBytes?: number;
  /** Further channel options; they override the limits above if they set them too. */
  channelOptions?: grpc.ChannelOptions;
  /** A bearer token sent with every call (`authorization: Bearer <token>`). */
  token?: string;
  /**
   * How errors name a gradient request's fields: the SDK's (`inputPaths (jac_inputs)`, `tangent`;
   * the default) or the wire's alone (`jac_inputs`, `tangent_vector`), for tools whose users write
   * the .proto's JSON, as the CLI's do.
   */
  fieldNames?: "sdk" | "wire";
}

/**
 * A token as a header value: without the whitespace around it (a token read from a file ends with a
 * newline), and refused here when it holds what a header cannot; every call failed with UNKNOWN,
 * grpc-js's "Metadata string value … contains illegal characters".
 */
function checkedToken(token: string): string {
  if (typeof token !== "string") throw new TypeError(`a bearer token is a string (the \`token\` option); it is ${typeof token}`);
  const trimmed = token.trim();
  if (!/^[\x21-\x7e]+(?: +[\x21-\x7e]+)*$/.test(trimmed)) throw new TypeError("a bearer token must be visible ASCII characters, without line breaks or control characters (the `token` option)");
  return trimmed;
}

/** Adds `authorization: Bearer <token>` to every call of a client. */
export function bearerToken(token: string): grpc.Interceptor {
  token = checkedToken(token);
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Request options for the gradient endpoints: any subset of the wire's FiniteDifferenceOptions. */
export type FiniteDifferenceRequestOptions = Partial<FiniteDifferenceOptions>;

/** JacobianVectorProductResponse and VectorJacobianProductResponse alike. */
type VectorProductMessage = { result: Record<string, Tensor>; error_estimate: Record<string, Tensor>; stats?: EvaluationStats };

/** Tangents or cotangents as Tensor messages; what cannot be encoded is the caller's mistake. */
function encodeVectors(name: string, vectors: Record<string, NdArray<any>>): Record<string, Tensor> {
  return guard(grpc.status.INVALID_ARGUMENT, `${name} could not be encoded`, () => tensorMap(vectors, name));
}

/** A JVP or VJP response as FP64 ndarrays; what cannot be decoded is the server's fault. */
function vectorProduct(response: VectorProductMessage): VectorProductResult {
  return guard(grpc.status.INTERNAL, "the response could not be decoded", () => decodeVectorProduct(response));
}

function decodeVectorProduct(response: VectorProductMessage): VectorProductResult {
  const hasErrors = Object.keys(response.error_estimate ?? {}).length > 0;
  return new VectorProductResult(fp64Map(response.result, "result"), hasErrors ? fp64Map(response.error_estimate, "error_estimate") : undefined, response.stats ?? { ...NO_STATS });
}

/** What `jacobian` and `jacobianRows` take: d outputPaths / d inputPaths at `inputs` (path syntax: docs/writing-a-tesseract.md, "Paths"). */
export interface GradientRequest<I> {
  inputs: Arrays<I>;
  /** Input paths to differentiate with respect to; `[]` and `{}` patterns expand to every match. */
  inputPaths: readonly string[];
  /** Output paths to differentiate; patterns as for `inputPaths`. */
  outputPaths: readonly string[];
  /** Finite-difference options; unset: the server's defaults. */
  options?: FiniteDifferenceRequestOptions;
  /**
   * The Jacobian's structure per (output path, input path) block, as flat row-major index pairs
   * (COO), so the server perturbs elements with disjoint columns together; blocks left out are dense.
   * For `jacobian`, `jacobianRows` and `vjp` (a JVP needs none).
   */
  sparsity?: readonly SparsityPatternInput[];
}

/** One block's structurally nonzero entries: d output[output_index[k]] / d input[input_index[k]]. */
export interface SparsityPatternInput {
  output_path: string;
  input_path: string;
  output_index: ArrayLike<number>;
  input_index: ArrayLike<number>;
}

/** The patterns as messages (typed arrays become plain arrays); an index that is no uint64 is the caller's to fix, named. */
function sparsityMessages(patterns: readonly SparsityPatternInput[] | undefined): SparsityPattern[] {
  return guard(grpc.status.INVALID_ARGUMENT, "sparsity could not be encoded", () =>
    (patterns ?? []).map((p, k) => {
      const indices = (key: "output_index" | "input_index") => {
        const list = Array.from(p[key] ?? []);
        const bad = list.findIndex((i) => !(Number.isSafeInteger(i) && i >= 0));
        if (bad >= 0) throw new Error(`sparsity[${k}].${key}[${bad}] is ${String(list[bad])}: expected a whole number ≥ 0 (a flat row-major index)`);
        return list;
      };
      return { output_path: p.output_path, input_path: p.input_path, output_index: indices("output_index"), input_index: indices("input_index") };
    }),
  );
}

/** What `jvp` takes: J·tangent, `tangent` keyed by input path (shaped like the input); no sparsity (one direction needs none). */
export interface JvpRequest<I> extends Omit<GradientRequest<I>, "sparsity"> {
  tangent: Record<string, NdArray<any>>;
}

/** What `vjp` takes: cotangentᵀ·J, `cotangent` keyed by output path (shaped like the output). */
export interface VjpRequest<I> extends GradientRequest<I> {
  cotangent: Record<string, NdArray<any>>;
}

/** What `checkGradients` takes: the inputs, what to check and how strictly (0 or unset: the server's default). */
export interface CheckGradientsRequest<I> {
  inputs: Arrays<I>;
  /** Input paths (patterns allowed); empty: every differentiable path present in the inputs. */
  inputPaths?: readonly string[];
  /** Output paths (patterns allowed); empty: every differentiable path present in the outputs. */
  outputPaths?: readonly string[];
  /** "jacobian", "jvp", "vjp"; empty: all of them. */
  endpoints?: readonly string[];
  /** A value passes when |analytic − fd| ≤ atol + rtol·|fd|; defaults 1e-4 and 1e-6. */
  rtol?: number;
  atol?: number;
  /** Bound on apply calls; elements are sampled to stay within it. Default 1000. */
  maxEvals?: number;
  /** Which elements are sampled (and the random tangents and cotangents). Default 0. */
  seed?: number;
  /** Finite-difference options, as for the other gradient endpoints. */
  options?: FiniteDifferenceRequestOptions;
}

/** The generated client's unary methods with their request and response types. */
interface UnaryMethods {
  apply: [ApplyRequest, ApplyResponse];
  jacobian: [JacobianRequest, JacobianResponse];
  jacobianVectorProduct: [JacobianVectorProductRequest, JacobianVectorProductResponse];
  vectorJacobianProduct: [VectorJacobianProductRequest, VectorJacobianProductResponse];
  abstractEval: [AbstractEvalRequest, AbstractEvalResponse];
  describe: [DescribeRequest, DescribeResponse];
  checkGradients: [CheckGradientsMessage, CheckGradientsResponse];
}

/** Runs the SDK's own encoding or decoding; whatever it throws becomes a TesseractClientError with `code`. */
function guard<T>(code: number, what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TesseractClientError) throw e;
    throw new TesseractClientError(code, `${what}: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
  }
}

/** The message names a client sends and decodes, once checked against the server's Tesseract. */
interface TypeNames {
  input: string;
  output: string;
}

export class TesseractClient<I, O, const D extends DatatypeSpec<O> = {}> {
  private readonly rpc: GeneratedTesseractClient;
  private healthRpc?: ReturnType<typeof healthClient>;
  /** The bearer token's, on every call of both clients. */
  private readonly interceptors: grpc.Interceptor[];
  private checking?: Promise<TypeNames>;
  private closed = false;
  /** Aborted by close(): every call listens to it. */
  private readonly closing = new AbortController();
  private described?: DescribeResponse;

  private readonly fieldNames: "sdk" | "wire";
  /** The server's address; one without a port gets tesseract-grpc's 50051, as in the CLI (grpc-js's would be 443). */
  readonly address: string;

  constructor(
    address: string,
    private readonly types: TesseractTypes<I, O, D>,
    options: TesseractClientOptions = {},
  ) {
    checkClientArguments(address, types, options);
    // null from plain JavaScript is no options, as undefined is.
    options ??= {};
    this.address = withDefaultPort(address);
    this.fieldNames = options.fieldNames ?? "sdk";
    const limit = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (options.credentials && options.tls) throw new TypeError("TesseractClient: give `credentials` or `tls`, not both");
    const credentials = options.credentials ?? (options.tls ? tlsCredentials(options.tls) : grpc.credentials.createInsecure());
    this.interceptors = options.token ? [bearerToken(options.token)] : [];
    this.rpc = new GeneratedTesseractClient(this.address, credentials, {
      // grpc-js waits 1 s, then up to 120 s, between attempts to reach a server that is down: a
      // server started after its clients was reached minutes late.
      "grpc.initial_reconnect_backoff_ms": 250,
      "grpc.max_reconnect_backoff_ms": 5_000,
      "grpc.max_receive_message_length": limit,
      "grpc.max_send_message_length": limit,
      // HTTP/2's 64 KiB default window stalls a row stream on window updates (~3× slower here).
      "grpc-node.flow_control_window": FLOW_CONTROL_WINDOW_BYTES,
      ...options.channelOptions,
      interceptors: this.interceptors,
    });
  }

  /** A gradient call's error with its request's fields named as `fieldNames` says. */
  private renamed(e: unknown): unknown {
    return this.fieldNames === "wire" ? e : inSdkTerms(e);
  }

  private named<T>(call: Promise<T>): Promise<T> {
    return call.catch((e: unknown) => {
      throw this.renamed(e);
    });
  }

  /** Calls the generated unary method `name` on the channel's client. */
  private unary<K extends keyof UnaryMethods>(name: K, request: UnaryMethods[K][0], call: CallOptions | undefined): Promise<UnaryMethods[K][1]> {
    this.ensureOpen();
    const method = (this.rpc[name] as unknown as UnaryMethod<UnaryMethods[K][0], UnaryMethods[K][1]>).bind(this.rpc);
    return unaryCall(method, request, this.closable(call), this.address);
  }

  /**
   * `call` with a signal that `close()` aborts too: grpc-js lets a closed channel's calls run on, and
   * an iterator of rows left unread (a loop that stopped without `break`) held the caller's process
   * open until the server's --stream-stall-ms (5 minutes).
   */
  private closable(call: CallOptions | undefined): CallOptions {
    return { ...call, signal: call?.signal ? AbortSignal.any([this.closing.signal, call.signal]) : this.closing.signal };
  }

  private ensureOpen(): void {
    if (this.closed) throw new TesseractClientError(grpc.status.FAILED_PRECONDITION, `the client of ${this.address} is closed`);
  }

  /**
   * Input and output message names, checked once against the server's Describe (cached; a failure
   * is not). The Describe is shared by every call waiting for it, so it is made without any one
   * caller's signal or deadline (one caller giving up must not fail the others); each caller waits
   * under its own. A caller that waits for the server to come up (waitForReady) makes its own, under
   * its own options: shared, one caller's deadline failed the others, or one without a deadline held
   * every later call.
   */
  private typeNames(call?: CallOptions): Promise<TypeNames> {
    this.ensureOpen();
    if (this.checked) return Promise.resolve(this.checked);
    if (call?.waitForReady) return this.checkTypes(call);
    if (!this.checking) {
      const pending = this.checkTypes(call?.metadata === undefined ? undefined : { metadata: call.metadata });
      this.checking = pending;
      pending.catch(() => {
        if (this.checking === pending) this.checking = undefined;
      });
    }
    return waitUnder(this.checking, this.closable(call), `the server's Describe (the SDK checks the message types once)`);
  }

  /** The names once a Describe checked them. */
  private checked?: TypeNames;

  private async checkTypes(call?: CallOptions): Promise<TypeNames> {
    const served = this.described ?? (await this.describe(call));
    const input = this.types.inputType ?? this.types.inputs.$type;
    const output = this.types.outputType ?? this.types.outputs.$type;
    // Clipped: the server's words, of any length (a 200 000-character name made a 400 KB message).
    const server = `the server at ${this.address} serves ${clip(served.name)} (${clip(served.input_type)} -> ${clip(served.output_type)})`;
    if (input === undefined) {
      throw new TesseractClientError(
        grpc.status.FAILED_PRECONDITION,
        `${server}, and this client's input type has no name to check it against: give \`inputType\` (${quote(served.input_type)} if that is right), or generate the types with ts-proto's outputTypeAnnotations=static-only`,
      );
    }
    if (input !== served.input_type || (output !== undefined && output !== served.output_type)) {
      throw new TesseractClientError(grpc.status.FAILED_PRECONDITION, `${server}, but this client was made for ${input} -> ${output ?? "(any output type)"}: is the address right?`);
    }
    this.checked = { input, output: served.output_type };
    return this.checked;
  }

  private packInputs(typeName: string, inputs: unknown, abstract = false): Any {
    return guard(grpc.status.INVALID_ARGUMENT, "inputs could not be encoded", () => packAny(typeName, this.types.inputs, inputs, { abstract }));
  }

  /**
   * The packed inputs and options every gradient request starts with. Requests are written out field
   * by field from it, not spread: a spread gave each request an object shape of its own.
   */
  private async gradientBase(inputs: Arrays<I>, options: FiniteDifferenceRequestOptions | undefined, call: CallOptions | undefined) {
    const names = await this.typeNames(call);
    return {
      inputs: this.packInputs(names.input, inputs),
      // null from plain JavaScript (a JSON request) is no options, as undefined is: it was a TypeError from inside the SDK.
      options: options == null ? undefined : FiniteDifferenceOptionsFns.fromPartial(options),
    };
  }

  private async jacobianRequest({ inputs, inputPaths, outputPaths, options, sparsity }: GradientRequest<I>, call?: CallOptions): Promise<JacobianRequest> {
    const base = await this.gradientBase(inputs, options, call);
    return { inputs: base.inputs, options: base.options, jac_inputs: [...inputPaths], jac_outputs: [...outputPaths], sparsity: sparsityMessages(sparsity) };
  }

  /** Runs the Tesseract once; the outputs are checked against `outputDatatypes` when given. */
  async apply(inputs: Arrays<I>, call?: CallOptions): Promise<ApplyOutputs<O, D>> {
    call = fixedDeadline(readCallOptions("apply", call));
    inputsObject(inputs, "inputs");
    const names = await this.typeNames(call);
    const response = await this.unary("apply", { inputs: this.packInputs(names.input, inputs) }, call);
    const outputs = guard(grpc.status.INTERNAL, "the response could not be decoded", () => unpackAny(response.outputs, this.types.outputs, "outputs", names.output));
    if (this.types.outputDatatypes) checkDatatypes(outputs, this.types.outputDatatypes, "outputs");
    return outputs as ApplyOutputs<O, D>;
  }

  /** d output / d input for every pair: jacobian[outputPath][inputPath], FP64, shape (*output_shape, *input_shape). */
  async jacobian(request: GradientRequest<I>, call?: CallOptions): Promise<JacobianResult> {
    call = fixedDeadline(readCallOptions("jacobian", call));
    const response = await this.named(this.unary("jacobian", await this.jacobianRequest(readRequest("jacobian", request), call), call));
    return guard(grpc.status.INTERNAL, "the response could not be decoded", () => {
      // Keyed by the server's paths: without a prototype, an output named "constructor" or
      // "toString" is an entry, not Object.prototype's function (which the blocks were set on).
      const jacobian: NestedJacobian = emptyRecord();
      let errorEstimate: NestedJacobian | undefined;
      const blockIn = (nested: NestedJacobian, output: string) => (Object.hasOwn(nested, output) ? nested[output]! : (nested[output] = emptyRecord()));
      response.entries.forEach((e, k) => {
        blockIn(jacobian, e.output_path)[e.input_path] = fp64Array(e.value, `entries[${k}].value`);
        if (e.error_estimate) blockIn((errorEstimate ??= emptyRecord()), e.output_path)[e.input_path] = fp64Array(e.error_estimate, `entries[${k}].error_estimate`);
      });
      return new JacobianResult(jacobian, errorEstimate, response.stats ?? { ...NO_STATS });
    });
  }

  /**
   * The Jacobian streamed row by row: `{ header }`, then `{ row }` events (values are Float64Array views,
   * valid as long as you hold them), then `{ stats }`. Lazy: the call starts with the iteration. Leaving
   * the `for await` loop early (break, return, throw), an error, or the signal cancels the call.
   * `assembleJacobian(client.jacobianRows(...))` gives what `jacobian()` gives.
   */
  async *jacobianRows(request: GradientRequest<I>, call?: CallOptions): AsyncGenerator<JacobianRowsEvent, void, undefined> {
    call = fixedDeadline(readCallOptions("jacobianRows", call));
    const message = await this.jacobianRequest(readRequest("jacobianRows", request), call);
    this.ensureOpen();
    const signal = callSignal(this.closable(call).signal);
    if (signal?.aborted) throw cancelledError(signal);
    let stream: grpc.ClientReadableStream<JacobianRowsResponse>;
    try {
      stream = this.rpc.jacobianRows(message, toMetadata(call?.metadata, call?.waitForReady), toGrpcOptions(call));
    } catch (e) {
      throw toClientError(e);
    }
    const onAbort = () => cancelCall(stream);
    signal?.addEventListener("abort", onAbort, { once: true });
    const progress = new RowsProgress();
    try {
      for await (const response of stream as AsyncIterable<JacobianRowsResponse>) {
        const event = toRowsEvent(response);
        progress.count(event);
        yield event;
      }
    } catch (e) {
      throw this.renamed(callError(e, signal, { address: this.address, progress: progress.text() }));
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // grpc-js reports the cancellation as an 'error' event even once nobody reads the stream:
      // without a listener that would be an uncaught exception.
      stream.on("error", () => {});
      stream.cancel(); // a no-op after a normal end
    }
  }

  /** J·v: `tangent` keyed by input path (shaped like the input); result keyed by output path. */
  async jvp(request: JvpRequest<I>, call?: CallOptions): Promise<VectorProductResult> {
    call = fixedDeadline(readCallOptions("jvp", call));
    const { inputs, inputPaths, outputPaths, tangent, options } = readRequest("jvp", request);
    const tangent_vector = encodeVectors("tangent", tangent);
    const base = await this.gradientBase(inputs, options, call);
    const message: JacobianVectorProductRequest = { inputs: base.inputs, options: base.options, jvp_inputs: [...inputPaths], jvp_outputs: [...outputPaths], tangent_vector };
    return vectorProduct(await this.named(this.unary("jacobianVectorProduct", message, call)));
  }

  /** vᵀ·J: `cotangent` keyed by output path (shaped like the output); result keyed by input path. */
  async vjp(request: VjpRequest<I>, call?: CallOptions): Promise<VectorProductResult> {
    call = fixedDeadline(readCallOptions("vjp", call));
    const { inputs, inputPaths, outputPaths, cotangent, options, sparsity } = readRequest("vjp", request);
    const cotangent_vector = encodeVectors("cotangent", cotangent);
    const base = await this.gradientBase(inputs, options, call);
    const message: VectorJacobianProductRequest = {
      inputs: base.inputs,
      options: base.options,
      vjp_inputs: [...inputPaths],
      vjp_outputs: [...outputPaths],
      cotangent_vector,
      sparsity: sparsityMessages(sparsity),
    };
    return vectorProduct(await this.named(this.unary("vectorJacobianProduct", message, call)));
  }

  /**
   * Compares the Tesseract's analytic gradients with finite differences on sampled rows: `passed`,
   * and one GradientCheck per (endpoint, input path, output path) with the largest errors, the rows
   * checked, the failures and the worst entry. UNIMPLEMENTED for a Tesseract without analytic gradients.
   */
  async checkGradients(request: CheckGradientsRequest<I>, call?: CallOptions): Promise<CheckGradientsResponse> {
    call = fixedDeadline(readCallOptions("checkGradients", call));
    const check = readRequest("checkGradients", request);
    const base = await this.gradientBase(check.inputs, check.options, call);
    const message: CheckGradientsMessage = {
      inputs: base.inputs,
      options: base.options,
      input_paths: [...(check.inputPaths ?? [])],
      output_paths: [...(check.outputPaths ?? [])],
      endpoints: [...(check.endpoints ?? [])],
      rtol: check.rtol ?? 0,
      atol: check.atol ?? 0,
      max_evals: check.maxEvals ?? 0,
      seed: check.seed ?? 0,
    };
    return this.named(this.unary("checkGradients", message, call));
  }

  /** Output paths, shapes and datatypes from input shapes alone; tensors may be `{ shape, datatype }`. */
  async abstractEval(inputs: AbstractArrays<I>, call?: CallOptions): Promise<PathShape[]> {
    call = fixedDeadline(readCallOptions("abstractEval", call));
    inputsObject(inputs, "inputs");
    const names = await this.typeNames(call);
    const response = await this.unary("abstractEval", { inputs: this.packInputs(names.input, inputs, true) }, call);
    return response.outputs;
  }

  /** Name, version, message types, differentiable paths, defaults and endpoints. */
  async describe(call?: CallOptions): Promise<DescribeResponse> {
    call = readCallOptions("describe", call);
    const response = await this.unary("describe", {}, call);
    this.described = response;
    return response;
  }

  /** grpc.health.v1 Check: "SERVING", "NOT_SERVING", ...; `service` "" is the whole server. */
  async health(service = "", call?: CallOptions): Promise<ServingStatus> {
    isString(service, "health's service");
    call = readCallOptions("health", call);
    this.ensureOpen();
    this.healthRpc ??= healthClient(this.rpc.getChannel(), this.interceptors);
    return checkHealth(this.healthRpc, this.address, service, this.closable(call));
  }

  /** Closes the channel: calls in flight are cancelled (CANCELLED), calls made afterwards fail (FAILED_PRECONDITION). */
  close(): void {
    this.closed = true;
    this.closing.abort(new ClientClosed(`the client of ${this.address} was closed during the call`));
    this.rpc.close();
  }
}
