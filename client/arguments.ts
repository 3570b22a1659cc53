/**
 * The SDK's checks of what its callers pass, for callers in plain JavaScript, where TypeScript's
 * checks do not run. Every public method reads its arguments through here once (a getter is called
 * once, a Proxy's traps once each), so that a misuse rejects at once with INVALID_ARGUMENT naming the
 * argument or field and what was expected: `client.jacobian(undefined)`, a request without
 * `inputPaths` or a foreign AbortSignal were TypeErrors from inside the SDK, and a misspelt field
 * (`inputPath`, `option`) was dropped and the request sent without it.
 */
import { ChannelCredentials, Metadata, status } from "@grpc/grpc-js";
import { clip } from "../common/errors";
import { isNdArray } from "../common/tensor-codec";
import { portAloneMeant } from "./address";
import { TesseractClientError } from "./errors";

/** The error of a misused argument: INVALID_ARGUMENT, "`name` is `value`: expected `expected`". */
export function argumentError(name: string, value: unknown, expected: string, cause?: unknown): TesseractClientError {
  return new TesseractClientError(status.INVALID_ARGUMENT, `${name} is ${described(value)}: expected ${expected}`, undefined, cause === undefined ? undefined : { cause });
}

/** What a value is, in a few words: `undefined`, `42`, `"text"`, `a Float64Array`, `an object`. */
export function described(value: unknown): string {
  if (value === undefined) return "missing (undefined)";
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return clip(JSON.stringify(value));
    case "number":
    case "boolean":
      return String(value);
    case "bigint":
      return `${value}n`;
    case "symbol":
      return `a Symbol (${clip(String(value.description))})`;
    case "function":
      return `a function${value.name ? ` (${clip(value.name)})` : ""}`;
  }
  if (Array.isArray(value)) return `a plain array of ${value.length}`;
  if (isNdArray(value)) return `an ndarray of shape [${value.shape.join(", ")}]`;
  if (value instanceof Promise) return "a Promise";
  const name = safe(() => (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name);
  return typeof name === "string" && name !== "Object" && name !== "" ? `a${/^[AEIOU]/.test(name) ? "n" : ""} ${clip(name)}` : "an object";
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}

/** One field's check: throws argumentError naming `name` when `value` is not what the field takes. */
export type Check = (value: unknown, name: string) => void;

/** A field that may be left out (undefined; null too, as a JSON request writes none). */
export function optional(check: Check): Check & { optional: true } {
  return Object.assign((value: unknown, name: string) => {
    if (value != null) check(value, name);
  }, { optional: true as const });
}

export const isString: Check = (value, name) => {
  if (typeof value !== "string") throw argumentError(name, value, "a string");
};

export const isBoolean: Check = (value, name) => {
  if (typeof value !== "boolean") throw argumentError(name, value, "true or false");
};

export const isNumber: Check = (value, name) => {
  if (typeof value !== "number") throw argumentError(name, value, "a number");
};

export const isObject: Check = (value, name) => {
  if (typeof value !== "object" || value === null || Array.isArray(value) || ArrayBuffer.isView(value) || isNdArray(value)) throw argumentError(name, value, "an object");
};

/** A list of strings such as `example` (a string alone was sent as a list of its characters). */
function stringList(what: string, example: string): Check {
  return (value, name) => {
    if (!Array.isArray(value)) throw argumentError(name, value, `a list of ${what} strings, such as [${example}]`);
    value.forEach((item, k) => {
      if (typeof item !== "string") throw argumentError(`${name}[${k}]`, item, `a ${what} string, such as ${example}`);
    });
  };
}

export const pathList = stringList("path", `"mesh.points"`);

/** A record of ndarrays keyed by path (tangents, cotangents). */
export const arraysByPath: Check = (value, name) => {
  if (typeof value !== "object" || value === null || Array.isArray(value) || ArrayBuffer.isView(value) || isNdArray(value)) {
    throw argumentError(name, value, `an object of ndarrays keyed by path, such as { "mesh.points": ndarray(data, shape) }`);
  }
};

/** The Tesseract's inputs: an object of its input message's fields, ndarrays for tensors. */
export const inputsObject: Check = (value, name) => {
  if (typeof value !== "object" || value === null || Array.isArray(value) || ArrayBuffer.isView(value) || isNdArray(value)) {
    throw argumentError(name, value, "an object of the Tesseract's input fields (its Inputs message, with ndarrays for tensors)");
  }
};

/** A list of sparsity patterns, each `{ output_path, input_path, output_index, input_index }`. */
export const sparsityList: Check = (value, name) => {
  if (!Array.isArray(value)) throw argumentError(name, value, "a list of { output_path, input_path, output_index, input_index }");
  value.forEach((pattern, k) => {
    const fields = readFields(pattern, `${name}[${k}]`, SPARSITY_PATTERN, "{ output_path, input_path, output_index, input_index }");
    for (const key of ["output_index", "input_index"] as const) {
      const list = fields[key];
      if (!Array.isArray(list) && !(ArrayBuffer.isView(list) && !(list instanceof DataView))) throw argumentError(`${name}[${k}].${key}`, list, "a list of flat row-major indices (an array or typed array of whole numbers)");
    }
  });
};

const SPARSITY_PATTERN = { output_path: isString, input_path: isString, output_index: (() => {}) as Check, input_index: (() => {}) as Check };

/** What each field of an object takes. */
export type Fields = Record<string, Check & { optional?: true }>;

/**
 * `value`'s fields, each read once and checked; a field it has that `fields` does not name is refused
 * (a misspelt one was left out of the request). `shape` is how the object is written in messages.
 */
export function readFields<F extends Fields>(value: unknown, name: string, fields: F, shape: string, prefix = `${name}.`): { [K in keyof F]: unknown } {
  if (typeof value !== "object" || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) throw argumentError(name, value, `an object ${shape}`);
  let keys: string[];
  try {
    keys = Object.keys(value);
  } catch (e) {
    throw argumentError(name, value, `an object whose keys can be listed (listing them threw ${errorText(e)})`, e);
  }
  const unknown = keys.find((key) => !Object.hasOwn(fields, key) && safe(() => (value as Record<string, unknown>)[key]) !== undefined);
  if (unknown !== undefined) {
    throw new TesseractClientError(status.INVALID_ARGUMENT, `${prefix}${clip(unknown)} is not a field of ${name}: expected ${shape}`);
  }
  const read = {} as { [K in keyof F]: unknown };
  for (const key of Object.keys(fields) as (keyof F & string)[]) {
    let field: unknown;
    try {
      field = (value as Record<string, unknown>)[key];
    } catch (e) {
      throw new TesseractClientError(status.INVALID_ARGUMENT, `${prefix}${key} could not be read: ${errorText(e)}`, undefined, { cause: e });
    }
    fields[key](field, `${prefix}${key}`);
    read[key] = field;
  }
  return read;
}

function errorText(e: unknown): string {
  return e instanceof Error ? clip(e.message) : clip(String(e));
}

/**
 * A function's argument that must be a JacobianRows stream: an iterable or async iterable of events.
 * The method itself (`client.jacobianRows` without calling it) and a Promise get what to do instead.
 */
export function checkEvents(value: unknown, name: string): void {
  const expected = "an iterable or async iterable of JacobianRows events, such as client.jacobianRows(request)";
  if (typeof value === "function") throw argumentError(name, value, `${expected}: call the method, client.jacobianRows(request)`);
  if (value instanceof Promise) throw argumentError(name, value, `${expected}, not awaited`);
  const iterable = typeof value === "object" && value !== null && (typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function" || typeof (value as Iterable<unknown>)[Symbol.iterator] === "function");
  if (!iterable || typeof value === "string") throw argumentError(name, value, expected);
}

const UINT32_MAX = 2 ** 32 - 1;

/**
 * A whole number ≥ 0 where the wire has a uint32 or uint64 (uint64: up to 2^53, the integers a
 * number holds exactly); anything else failed in grpc-js's serializer as INTERNAL ("invalid uint32: -1").
 */
export function wholeNumber(max: number): Check {
  return (value, name) => {
    if (!(Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= max)) {
      throw argumentError(name, value, `a whole number from 0 to ${max === UINT32_MAX ? "2^32 - 1" : "2^53 - 1"}`);
    }
  };
}

/** An enum field: a number, its enum's value; a name (`"central"`, as the CLI and REST spell it) failed in grpc-js's serializer as INTERNAL. */
function enumValue(example: string): Check {
  return (value, name) => {
    if (!Number.isInteger(value)) throw argumentError(name, value, `a value of its enum, a number (${example}, exported by tesseract-grpc/client)`);
  };
}

/** A map<string, double>: an object of numbers. */
const numbersByPath: Check = (value, name) => {
  if (typeof value !== "object" || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) throw argumentError(name, value, `an object of numbers keyed by path, such as { "mesh.points": 1e-6 }`);
  for (const [key, number] of Object.entries(value)) {
    if (typeof number !== "number") throw argumentError(`${name}.{${key}}`, number, "a number");
  }
};

/** FiniteDifferenceOptions' fields, as the SDK takes them (every one optional). */
const OPTIONS: Fields = {
  algorithm: optional(enumValue("Algorithm.ALGORITHM_CENTRAL")),
  eps: optional(isNumber),
  num_samples: optional(wholeNumber(UINT32_MAX)),
  seed: optional(wholeNumber(Number.MAX_SAFE_INTEGER)),
  eps_by_path: optional(numbersByPath),
  step_mode: optional(enumValue("StepMode.STEP_MODE_RELATIVE")),
  typical_magnitude: optional(numbersByPath),
  stochastic_estimator: optional(enumValue("StochasticEstimator.STOCHASTIC_ESTIMATOR_SPSA")),
  sparsity_mode: optional(enumValue("SparsityMode.SPARSITY_MODE_DENSE")),
};

const OPTIONS_SHAPE = `${shapeOf(OPTIONS)} (FiniteDifferenceOptions' fields, such as { algorithm: Algorithm.ALGORITHM_CENTRAL, eps: 1e-6 })`;

const finiteDifferenceOptions: Check = (value, name) => {
  readFields(value, name, OPTIONS, OPTIONS_SHAPE);
};

/** What each request takes, by method. */
const GRADIENT = { inputs: inputsObject, inputPaths: pathList, outputPaths: pathList, options: optional(finiteDifferenceOptions) };

export const REQUESTS = {
  jacobian: { ...GRADIENT, sparsity: optional(sparsityList) },
  jacobianRows: { ...GRADIENT, sparsity: optional(sparsityList) },
  jvp: { ...GRADIENT, tangent: arraysByPath },
  vjp: { ...GRADIENT, cotangent: arraysByPath, sparsity: optional(sparsityList) },
  checkGradients: {
    inputs: inputsObject,
    inputPaths: optional(pathList),
    outputPaths: optional(pathList),
    endpoints: optional(stringList("endpoint", `"jacobian", "jvp", "vjp"`)),
    rtol: optional(isNumber),
    atol: optional(isNumber),
    maxEvals: optional(wholeNumber(UINT32_MAX)),
    seed: optional(wholeNumber(Number.MAX_SAFE_INTEGER)),
    options: optional(finiteDifferenceOptions),
  },
} satisfies Record<string, Fields>;

/** How a request is written, for messages: `{ inputs, inputPaths, outputPaths, options?, sparsity? }`. */
function shapeOf(fields: Fields): string {
  return `{ ${Object.entries(fields).map(([key, check]) => `${key}${check.optional ? "?" : ""}`).join(", ")} }`;
}

/** `method`'s request, each field read once and checked (INVALID_ARGUMENT naming the first that is wrong). */
export function readRequest<M extends keyof typeof REQUESTS>(method: M, request: unknown): { [K in keyof (typeof REQUESTS)[M]]: any } {
  const fields = REQUESTS[method];
  return readFields(request, `${method}'s request`, fields, shapeOf(fields), "") as { [K in keyof (typeof REQUESTS)[M]]: any };
}

/** Node's own AbortSignal, or one that behaves as one (a polyfill's, another realm's): `aborted` and `addEventListener`. */
function isSignalLike(value: unknown): value is AbortSignal {
  if (value instanceof AbortSignal) return true;
  return typeof value === "object" && value !== null && typeof safe(() => (value as AbortSignal).aborted) === "boolean" && typeof safe(() => (value as AbortSignal).addEventListener) === "function";
}

const nativeSignals = new WeakMap<object, AbortSignal>();

/**
 * Node's AbortSignal following `signal`. grpc-js and AbortSignal.any take Node's own alone: a
 * polyfilled or foreign signal was a TypeError from inside the SDK ("The "signals[1]" argument must
 * be an instance of AbortSignal"). One listener per foreign signal, however many calls it cancels.
 */
export function nativeSignal(given: AbortSignal): AbortSignal {
  if (given instanceof AbortSignal) return given;
  const signal: Pick<AbortSignal, "aborted" | "reason" | "addEventListener"> = given;
  let native = nativeSignals.get(signal);
  if (!native) {
    const controller = new AbortController();
    native = controller.signal;
    nativeSignals.set(signal, native);
    if (signal.aborted) controller.abort(signal.reason);
    else signal.addEventListener("abort", () => controller.abort(signal.reason));
  }
  return native;
}

const CALL_OPTIONS: Fields = {
  deadline: optional((value, name) => {
    if (typeof value !== "number" && !(value instanceof Date)) throw argumentError(name, value, "a Date or milliseconds from now");
  }),
  metadata: optional((value, name) => {
    if (typeof value !== "object" || Array.isArray(value) || ArrayBuffer.isView(value)) throw argumentError(name, value, `an object of header strings, such as { "x-request-id": "42" }, or a grpc.Metadata`);
    if (value instanceof Metadata) return;
    if (safe(() => (value as object).constructor?.name) === "Metadata") throw argumentError(name, value, `a grpc.Metadata of the @grpc/grpc-js this SDK uses, or an object of header strings, such as { "x-request-id": "42" }`);
    for (const [key, text] of Object.entries(value as object)) {
      if (typeof text !== "string" && !Buffer.isBuffer(text)) throw argumentError(`${name}.${key}`, text, "a string (a header value; binary ones, whose key ends in -bin, a Buffer)");
    }
  }),
  signal: optional((value, name) => {
    if (!isSignalLike(value)) throw argumentError(name, value, "an AbortSignal, such as new AbortController().signal");
  }),
  waitForReady: optional(isBoolean),
};

const CALL_SHAPE = shapeOf(CALL_OPTIONS);

/**
 * A method's call options, checked, with a signal Node's calls take: what every method reads its
 * last argument through. A number or string where the options go was ignored.
 */
export function readCallOptions<T extends { signal?: AbortSignal }>(method: string, call: unknown): T | undefined {
  if (call == null) return undefined;
  const read = readFields(call, `${method}'s call options`, CALL_OPTIONS, CALL_SHAPE, "");
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(read)) if (value != null) options[key] = value;
  if (options.signal) options.signal = nativeSignal(options.signal as AbortSignal);
  return options as T;
}

/** ts-proto's generated message object (`Inputs` from the generated module): encode and decode. */
const messageFns: Check = (value, name) => {
  const fns = value as { encode?: unknown; decode?: unknown } | null;
  if (typeof fns !== "object" || fns === null || typeof safe(() => fns.encode) !== "function" || typeof safe(() => fns.decode) !== "function") {
    throw argumentError(name, value, "a generated message object with encode and decode, such as Inputs from the module tesseract-grpc generate writes");
  }
};

const TYPES: Fields = { inputs: messageFns, outputs: messageFns, inputType: optional(isString), outputType: optional(isString), outputDatatypes: optional(isObject) };

/** A PEM's contents: a Buffer (a string is taken too, as Node's TLS takes one). */
const pem: Check = (value, name) => {
  if (typeof value !== "string" && !(value instanceof Uint8Array)) throw argumentError(name, value, "the PEM file's contents, a Buffer (fs.readFileSync(path))");
};

const CLIENT_OPTIONS: Fields = {
  credentials: optional((value, name) => {
    if (!(value instanceof ChannelCredentials)) throw argumentError(name, value, "grpc.ChannelCredentials of the @grpc/grpc-js this SDK uses, or the `tls` option (tlsCredentials)");
  }),
  tls: optional((value, name) => void readFields(value, name, { ca: optional(pem), cert: optional(pem), key: optional(pem) }, "{ ca?, cert?, key? } of PEM contents (Buffers); {} for the system's roots")),
  maxMessageBytes: optional((value, name) => {
    if (!(Number.isSafeInteger(value) && (value as number) > 0 && (value as number) <= 2 ** 31 - 1)) throw argumentError(name, value, "a whole number of bytes from 1 to 2^31 - 1");
  }),
  channelOptions: optional(isObject),
  token: optional(isString),
  fieldNames: optional((value, name) => {
    if (value !== "sdk" && value !== "wire") throw argumentError(name, value, `"sdk" or "wire"`);
  }),
};

/** The TesseractClient constructor's arguments, checked: `address`, `types` and `options`. */
export function checkClientArguments(address: unknown, types: unknown, options: unknown): void {
  if (typeof address !== "string" || address.trim() === "") throw argumentError("TesseractClient's address", address, `the server's address, a string "HOST:PORT" such as "127.0.0.1:50051"`);
  const meant = portAloneMeant(address);
  if (meant !== undefined) throw argumentError("TesseractClient's address", address, `"HOST:PORT", not a port alone: "${meant}"`);
  readFields(types, "TesseractClient's types", TYPES, `${shapeOf(TYPES)}, such as { inputs: Inputs, outputs: Outputs }`, "types.");
  if (options != null) readFields(options, "TesseractClient's options", CLIENT_OPTIONS, shapeOf(CLIENT_OPTIONS), "options.");
}
