/**
 * tesseract-grpc: serve a Tesseract over gRPC, differentiate it by finite differences, and call it.
 *
 * The symbols above the line are for end users: authoring a Tesseract, serving it, calling it. Those
 * below are for libraries and tools that run Tesseracts without a transport. `tesseract-grpc/client`
 * is the SDK alone (no server code), for apps that only call.
 */

// Authoring a Tesseract (a module that default-exports a definition).
export { defineTesseract, Algorithm, SparsityMode, StepMode, StochasticEstimator } from "./server/tesseract";
export type { Arrays, AbstractTensor, AbstractOutput, TesseractDefinition, FiniteDifferenceDefaults, AnalyticJacobian, DomainBounds, SparsityPattern } from "./server/tesseract";
export { Code, TesseractError, invalidArgument } from "./common/errors";

// Serving it.
export { startServer, DEFAULTS as SERVE_DEFAULTS, type ServeOptions, type RunningServer } from "./server/grpc/server";
export type { ServerTls } from "./server/grpc/tls";

// Calling it: the SDK, as in tesseract-grpc/client.
export { TesseractClient, TesseractClientError, assembleJacobian, type TesseractClientOptions, type CallOptions } from "./client/index";

// Tensors on the wire.
export { BoolArray, DataType, decodeTensor, encodeTensor, toFloat64 } from "./common/tensor-codec";

// ---------------------------------------------------------------------------------------------
// For libraries: a loaded Tesseract and its endpoints over decoded trees, without a transport.
export { loadTesseract } from "./server/loader";
export { BUNDLED } from "./server/find-tesseract";
export { loadTesseractCore, isTesseractCoreUrl, type TesseractCoreOptions } from "./server/bridge/tesseract-core";
export { TesseractRuntime, type GradientRequest, type EvaluationStats, type VectorProduct, type JacobianRow, type JacobianRowStream, type PathShape } from "./server/runtime";
export type { EvaluationSettings } from "./server/eval/backends";
