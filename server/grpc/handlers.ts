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
import type { GradientRequest, TesseractRuntime } from "../runtime";
import type { AnyMessage } from "../schema/schema";
import { decodeTensor, fp64Tensor, type DecodeLimits, type TensorMessage } from "../../common/tensor-codec";
import { jacobianRowsMessages, writeAll } from "./rows-stream";
import type { CallRegistry } from "./calls";

export interface HandlerConfig {
  /** JacobianRows message budget in bytes. */
  streamChunkBytes: number;
  /** Largest message sent or received. */
  maxMessageBytes: number;
  /** Most rows one JacobianRows call may produce (0: no limit). */
  maxRowsPerStream: number;
  /** Per-evaluation timeout in ms (0: none), reported by Describe. */
  evalTimeoutMs: number;
}

/** Room left in a unary Jacobian response for everything but the FP64 values. */
const RESPONSE_SLACK_BYTES = 64 * 1024;

interface GradientMessage {
  inputs?: AnyMessage;
  options?: RequestOptions;
}

/** A unary handler; `job` ones wait for a gradient-job slot first. */
function unary<Req, Res>(calls: CallRegistry, rpc: string, handle: (request: Req, signal: AbortSignal) => Promise<Res>, job = false): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const t = calls.track(call, rpc);
    const work = (async () => {
      if (t.refusal) throw t.refusal;
      if (job) await t.admit();
      return handle(call.request, t.signal);
    })();
    const answer = (send: () => void) => {
      try {
        send();
      } catch (e) {
        callback(t.lastResort(e) as grpc.ServiceError);
      }
    };
    t.race(work).then(
      (response) => answer(() => (t.finish(), callback(null, response))),
      (error) => answer(() => callback(t.finish(error) as grpc.ServiceError)),
    );
  };
}

/** A server-streaming handler: `messages` are written with backpressure, then the status. */
function serverStreaming<Req>(calls: CallRegistry, rpc: string, messages: (request: Req, signal: AbortSignal) => AsyncIterable<Record<string, unknown>>): grpc.handleServerStreamingCall<Req, unknown> {
  return (call) => {
    const t = calls.track(call, rpc);
    const run = async () => {
      if (t.refusal) throw t.refusal;
      await t.admit();
      await writeAll(call, messages(call.request, t.signal), t.signal);
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

export function createHandlers(runtime: TesseractRuntime, config: HandlerConfig, calls: CallRegistry): grpc.UntypedServiceImplementation {
  const gradient = (req: GradientMessage, inputPaths: string[] | undefined, outputPaths: string[] | undefined, signal: AbortSignal): GradientRequest => ({
    inputs: runtime.decodeInputs(req.inputs),
    inputPaths: inputPaths ?? [],
    outputPaths: outputPaths ?? [],
    options: req.options,
    signal,
  });
  type JacobianMessage = GradientMessage & { jac_inputs?: string[]; jac_outputs?: string[] };

  return {
    Apply: unary(calls, "Apply", async (req: { inputs?: AnyMessage }, signal) => ({ outputs: await runtime.applyMessage(req.inputs, signal) })),

    Jacobian: unary(calls, "Jacobian", async (req: JacobianMessage, signal) => {
      const maxBytes = config.maxMessageBytes - RESPONSE_SLACK_BYTES;
      const { entries, stats } = await runtime.jacobian({ ...gradient(req, req.jac_inputs, req.jac_outputs, signal), maxBytes });
      return {
        entries: entries.map((e) => ({
          output_path: e.outputPath,
          input_path: e.inputPath,
          value: fp64Tensor(e.values, e.shape),
          error_estimate: e.errors && fp64Tensor(e.errors, e.shape),
        })),
        stats,
      };
    }, true),

    JacobianRows: serverStreaming(calls, "JacobianRows", (req: JacobianMessage, signal) =>
      jacobianRowsMessages(runtime, gradient(req, req.jac_inputs, req.jac_outputs, signal), config.streamChunkBytes, config.maxRowsPerStream),
    ),

    JacobianVectorProduct: unary(calls, "JacobianVectorProduct", async (req: GradientMessage & { jvp_inputs?: string[]; jvp_outputs?: string[]; tangent_vector?: Record<string, TensorMessage> }, signal) => {
      const tangent = decodeVectors("tangent_vector", req.tangent_vector, runtime.decodeLimits);
      const { result, errors, stats } = await runtime.jvp({ ...gradient(req, req.jvp_inputs, req.jvp_outputs, signal), tangent });
      return { result: encodeVectors(result), error_estimate: errors && encodeVectors(errors), stats };
    }, true),

    VectorJacobianProduct: unary(calls, "VectorJacobianProduct", async (req: GradientMessage & { vjp_inputs?: string[]; vjp_outputs?: string[]; cotangent_vector?: Record<string, TensorMessage> }, signal) => {
      const cotangent = decodeVectors("cotangent_vector", req.cotangent_vector, runtime.decodeLimits);
      const { result, errors, stats } = await runtime.vjp({ ...gradient(req, req.vjp_inputs, req.vjp_outputs, signal), cotangent });
      return { result: encodeVectors(result), error_estimate: errors && encodeVectors(errors), stats };
    }, true),

    AbstractEval: unary(calls, "AbstractEval", async (req: { inputs?: AnyMessage }) => {
      return { outputs: runtime.abstractEval(runtime.decodeAbstractInputs(req.inputs)) };
    }),

    Describe: unary(calls, "Describe", async () => ({
      ...runtime.describe(),
      limits: {
        max_message_bytes: config.maxMessageBytes,
        max_tensor_elements: runtime.decodeLimits.maxElements,
        max_tensor_bytes: runtime.decodeLimits.maxBytes ?? 0,
        max_rows_per_stream: config.maxRowsPerStream,
        eval_timeout_ms: config.evalTimeoutMs,
        stream_chunk_bytes: config.streamChunkBytes,
        max_jobs: calls.limits.maxJobs,
        max_queue: calls.limits.maxQueue,
        default_deadline_ms: calls.limits.defaultDeadlineMs,
        max_deadline_ms: calls.limits.maxDeadlineMs,
      },
    })),

    CheckGradients: unary(calls, "CheckGradients", async (req: GradientMessage & { input_paths?: string[]; output_paths?: string[]; endpoints?: string[]; rtol?: number; atol?: number; max_evals?: number; seed?: string }, signal) => {
      requireAnalyticJacobian(runtime); // UNIMPLEMENTED whatever the inputs
      const { passed, checks } = await runtime.checkGradients({
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
      });
      return { passed, checks };
    }, true),
  };
}
