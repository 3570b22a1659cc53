/**
 * The TypeScript SDK of tesseract-grpc: a typed client per Tesseract, streamed Jacobian rows and
 * their assembly, one error type, and the shared tensor codec (the same one the server uses).
 */
export {
  TesseractClient,
  bearerToken,
  DEFAULT_MAX_MESSAGE_BYTES,
  type TesseractTypes,
  type TesseractClientOptions,
  type FiniteDifferenceRequestOptions,
  type ApplyOutputs,
  type GradientRequest,
  type JvpRequest,
  type VjpRequest,
  type CheckGradientsRequest,
  type SparsityPatternInput,
} from "./tesseract-client";
export type { CallOptions } from "./call";
export { tlsCredentials, type ClientTls } from "./tls";
export type { ServingStatus } from "./health";
export { TesseractClientError, isTesseractClientError, codeName, type CallPlace } from "./errors";
export {
  assembleJacobian,
  assembleSparseJacobian,
  densifyRows,
  toRowsEvent,
  type JacobianRowsEvent,
  type RowValues,
  type RowSliceValues,
  type SparseBlock,
  SparseJacobianResult,
  type DenseRow,
  type DenseRowsEvent,
} from "./rows";
export { JacobianResult, VectorProductResult, type NestedJacobian } from "./results";
export type { DatatypeName, DatatypeSpec, TypedArrays, ArrayOfDatatype } from "./datatypes";
export { packAny, unpackAny, type MessageFns } from "./any";
export { TYPE_URL_PREFIX } from "../common/type-url";
export { toTensors, toArrays, tensorMessage, type AbstractArrays } from "./tree";
export { BoolArray, encodeTensor, decodeTensor, DataType, toFloat64 } from "../common/tensor-codec";
export type { Arrays, AbstractTensor } from "../common/tree-types";
export { Algorithm, SparsityMode, StepMode, StochasticEstimator } from "../generated/tesseract/v1/algorithm";
export type { FiniteDifferenceOptions, DescribeResponse, EvaluationStats, JacobianHeader, PathShape, CheckGradientsResponse, GradientCheck } from "../generated/tesseract/v1/tesseract";
