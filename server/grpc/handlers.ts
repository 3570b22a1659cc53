/**
 * The Tesseract service's handlers: wire messages in, runtime calls, wire messages out. The call
 * registry (calls.ts) gives each call its request id, AbortSignal, admission and log line; errors
 * map to statuses in one place (status.ts).
 */
import type * as grpc from "@grpc/grpc-js";
import type { NdArray } from "ndarray";
import { requireAnalyticJacobian } from "../checking/check-gradients";
import { clip } from "../../common/errors";
import { recordFrom } from "../../common/records";
import type { RequestOptions } from "../fd/options";
import type { SparsityPattern } from "../tesseract";
import type { GradientRequest, JacobianEntry, TesseractRuntime, VectorProduct } from "../runtime";
import type { AnyMessage } from "../schema/schema";
import { decodeTensor, DEFAULT_MAX_MESSAGES, fp64Tensor, type DecodeLimits, type TensorMessage } from "../../common/tensor-codec";
import { jacobianRowsMessages, writeAll, type RowsMessage } from "./rows-stream";
import type { CallRegistry, TrackedCall } from "./calls";
import { framedAnswer } from "./answer-limit";
import type { FramedMessage } from "./framed-messages";

export interface HandlerConfig {
  /** JacobianRows message budget in bytes. */
  streamChunkBytes: number;
  /** Largest message sent or received. */
  maxMessageBytes: number;
  /** Most rows one JacobianRows call may produce (0: no limit). */
  maxRowsPerStream: number;
  /** Per-evaluation timeout in ms (0: none), reported by Describe. */
  evalTimeoutMs: number;
  /** How long a JacobianRows call may wait for its reader (0: forever); see rows-stream.ts. */
  streamStallMs: number;
}


interface GradientMessage {
  inputs?: AnyMessage;
  options?: RequestOptions;
  /** JacobianRequest and VectorJacobianProductRequest only. */
  sparsity?: SparsityPattern[];
}

/** What a handler body gets: the decoded request and the call's bookkeeping (signal, admission). */
type Handle<Req, Res> = (request: Req, call: TrackedCall) => Promise<Res>;

/** A body that needs only the call's signal. */
const plain =
  <Req, Res>(handle: (request: Req, signal: AbortSignal) => Promise<Res>): Handle<Req, Res> =>
  (request, call) =>
    handle(request, call.signal);

/** A gradient job: waits for a job slot (calls.ts admission) before the body runs. */
const job =
  <Req, Res>(handle: (request: Req, signal: AbortSignal) => Promise<Res>): Handle<Req, Res> =>
  async (request, call) => {
    await call.admit();
    return handle(request, call.signal);
  };

/** How each RPC's response is encoded, and the most bytes it may have. */
interface Answers {
  service: grpc.ServiceDefinition;
  maxBytes: number;
}

/** A unary handler: the call tracked, the body raced against its abort, one answer whatever happens, within the message limit. */
function unaryCall<Req, Res>(calls: CallRegistry, rpc: string, handle: Handle<Req, Res>, answers: Answers): grpc.handleUnaryCall<Req, Res> {
  const encode = answers.service[rpc].responseSerialize;
  return (call, callback) => {
    const t = calls.track(call, rpc);
    const work = (async () => {
      if (t.refusal) throw t.refusal;
      return handle(call.request, t);
    })();
    const answer = (send: () => void) => {
      try {
        send();
      } catch (e) {
        callback(t.lastResort(e) as grpc.ServiceError);
      }
    };
    t.race(work).then(
      (response) =>
        answer(() => {
          let framed: FramedMessage;
          try {
            t.checkDeadline(); // past it, grpc-js has sent its status (calls.ts)
            framed = framedAnswer(rpc, encode, response, answers.maxBytes);
          } catch (e) {
            return callback(t.finish(e) as grpc.ServiceError);
          }
          t.finish();
          callback(null, framed as Res);
        }),
      (error) => answer(() => callback(t.finish(error) as grpc.ServiceError)),
    );
  };
}

/** A server-streaming handler: `messages` are written with backpressure, then the status. */
function serverStreaming<Req>(
  calls: CallRegistry,
  rpc: string,
  messages: (request: Req, signal: AbortSignal) => AsyncIterable<RowsMessage | RowsMessage[]>,
  stallMs: number,
): grpc.handleServerStreamingCall<Req, unknown> {
  return (call) => {
    const t = calls.track(call, rpc);
    const run = async () => {
      if (t.refusal) throw t.refusal;
      await t.admit();
      await writeAll(call, messages(call.request, t.signal), t.signal, t.checkDeadline, stallMs);
    };
    const answer = (send: () => void) => {
      try {
        send();
      } catch (e) {
        call.emit("error", t.lastResort(e));
      }
    };
    t.race(run()).then(
      () => answer(() => (t.finish(), call.end())),
      (error) => answer(() => call.emit("error", t.finish(error))),
    );
  };
}

function decodeVectors(field: string, vectors: Record<string, TensorMessage> | undefined, limits: DecodeLimits): Record<string, NdArray<any>> {
  return recordFrom(Object.entries(vectors ?? {}).map(([key, t]) => [key, decodeTensor(t, `${field}.{${clip(key)}}`, limits)]));
}

function encodeVectors(result: Record<string, NdArray<Float64Array>>) {
  return recordFrom(Object.entries(result).map(([key, a]) => [key, fp64Tensor(a.data, a.shape)]));
}

type JacobianMessage = GradientMessage & { jac_inputs?: string[]; jac_outputs?: string[] };
type JvpMessage = GradientMessage & { jvp_inputs?: string[]; jvp_outputs?: string[]; tangent_vector?: Record<string, TensorMessage> };
type VjpMessage = GradientMessage & { vjp_inputs?: string[]; vjp_outputs?: string[]; cotangent_vector?: Record<string, TensorMessage> };
type CheckMessage = GradientMessage & { input_paths?: string[]; output_paths?: string[]; endpoints?: string[]; rtol?: number; atol?: number; max_evals?: number; seed?: string };

/** The handler bodies over one runtime: wire messages in, runtime calls, wire messages out. */
class Bodies {
  constructor(
    private readonly runtime: TesseractRuntime,
    private readonly config: HandlerConfig,
    private readonly calls: CallRegistry,
  ) {}

  private gradient(req: GradientMessage, inputPaths: string[] | undefined, outputPaths: string[] | undefined, signal: AbortSignal): GradientRequest {
    return { inputs: this.runtime.decodeInputs(req.inputs), inputPaths: inputPaths ?? [], outputPaths: outputPaths ?? [], options: req.options, sparsity: req.sparsity, signal };
  }

  apply = async (req: { inputs?: AnyMessage }, signal: AbortSignal) => ({ outputs: await this.runtime.applyMessage(req.inputs, signal) });

  jacobian = async (req: JacobianMessage, signal: AbortSignal) => {
    // Values alone over the limit are refused before any evaluation; the whole answer is sized exactly once computed (answer-limit.ts).
    const maxBytes = this.config.maxMessageBytes;
    const { entries, stats } = await this.runtime.jacobian({ ...this.gradient(req, req.jac_inputs, req.jac_outputs, signal), maxBytes });
    const tensors = (e: JacobianEntry) => ({ value: fp64Tensor(e.values, e.shape), error_estimate: e.errors && fp64Tensor(e.errors, e.shape) });
    return { entries: entries.map((e) => ({ output_path: e.outputPath, input_path: e.inputPath, ...tensors(e) })), stats };
  };

  jacobianRows = (req: JacobianMessage, signal: AbortSignal) =>
    jacobianRowsMessages(this.runtime, this.gradient(req, req.jac_inputs, req.jac_outputs, signal), this.config.streamChunkBytes, this.config.maxRowsPerStream);

  jvp = async (req: JvpMessage, signal: AbortSignal) => {
    const tangent = decodeVectors("tangent_vector", req.tangent_vector, this.runtime.decodeLimits);
    return vectorProduct(await this.runtime.jvp({ ...this.gradient(req, req.jvp_inputs, req.jvp_outputs, signal), tangent }));
  };

  vjp = async (req: VjpMessage, signal: AbortSignal) => {
    const cotangent = decodeVectors("cotangent_vector", req.cotangent_vector, this.runtime.decodeLimits);
    return vectorProduct(await this.runtime.vjp({ ...this.gradient(req, req.vjp_inputs, req.vjp_outputs, signal), cotangent }));
  };

  abstractEval = async (req: { inputs?: AnyMessage }, signal: AbortSignal) => ({ outputs: await this.runtime.abstractEval(this.runtime.decodeAbstractInputs(req.inputs), signal) });

  describe = async () => ({ ...this.runtime.describe(), limits: this.limits() });

  checkGradients = async (req: CheckMessage, signal: AbortSignal) => {
    const { runtime } = this;
    const started = performance.now();
    const { passed, checks, apply_calls, column_groups, sparsity_source } = await runtime.checkGradients({
      inputs: runtime.decodeInputs(req.inputs),
      inputPaths: req.input_paths ?? [],
      outputPaths: req.output_paths ?? [],
      endpoints: req.endpoints ?? [],
      rtol: req.rtol,
      atol: req.atol,
      maxEvals: req.max_evals,
      seed: req.seed,
      options: req.options,
      signal,
      maxBytes: this.config.maxMessageBytes,
    });
    return { passed, checks, stats: { apply_calls, wall_seconds: (performance.now() - started) / 1000, adjusted_steps: [], column_groups, sparsity_source } };
  };

  /** Describe's ServerLimits: what this server refuses, so clients can size their requests. */
  private limits() {
    const { config, runtime, calls } = this;
    return {
      max_message_bytes: config.maxMessageBytes,
      max_tensor_elements: runtime.decodeLimits.maxElements,
      max_tensor_bytes: runtime.decodeLimits.maxBytes ?? 0,
      max_request_messages: runtime.decodeLimits.maxMessages ?? DEFAULT_MAX_MESSAGES,
      max_rows_per_stream: config.maxRowsPerStream,
      eval_timeout_ms: config.evalTimeoutMs,
      stream_stall_ms: config.streamStallMs,
      stream_chunk_bytes: config.streamChunkBytes,
      max_jobs: calls.limits.maxJobs,
      max_queue: calls.limits.maxQueue,
      default_deadline_ms: calls.limits.defaultDeadlineMs,
      max_deadline_ms: calls.limits.maxDeadlineMs,
    };
  }
}

function vectorProduct({ result, errors, stats }: VectorProduct) {
  return { result: encodeVectors(result), error_estimate: errors && encodeVectors(errors), stats };
}

/** The handlers of `service` (loadDefinition's, whose encoders answers use) over `runtime`. */
export function createHandlers(runtime: TesseractRuntime, config: HandlerConfig, calls: CallRegistry, service: grpc.ServiceDefinition): grpc.UntypedServiceImplementation {
  const body = new Bodies(runtime, config, calls);
  const answers: Answers = { service, maxBytes: config.maxMessageBytes };
  const unary = <Req, Res>(rpc: string, handle: Handle<Req, Res>) => unaryCall(calls, rpc, handle, answers);
  // CheckGradients is UNIMPLEMENTED for a Tesseract without analytic gradients, whatever the inputs, before any job slot.
  const requireAnalytic = <Req, Res>(handle: Handle<Req, Res>): Handle<Req, Res> => (request, call) => (requireAnalyticJacobian(runtime), handle(request, call));
  return {
    Apply: unary("Apply", plain(body.apply)),
    Jacobian: unary("Jacobian", job(body.jacobian)),
    JacobianRows: serverStreaming(calls, "JacobianRows", body.jacobianRows, config.streamStallMs),
    JacobianVectorProduct: unary("JacobianVectorProduct", job(body.jvp)),
    VectorJacobianProduct: unary("VectorJacobianProduct", job(body.vjp)),
    AbstractEval: unary("AbstractEval", plain(body.abstractEval)),
    Describe: unary("Describe", plain(body.describe)),
    CheckGradients: unary("CheckGradients", requireAnalytic(job(body.checkGradients))),
  };
}
