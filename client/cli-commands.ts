/**
 * The CLI's client commands. Payloads are tesseract-core's JSON (text, `@file`, or `@-` for stdin);
 * the message types come from the server by reflection, so any Tesseract can be called without its
 * .proto files. Results are printed as JSON on stdout; errors on stderr with a non-zero exit.
 */
import { CHECK_DEFAULTS } from "../common/check-defaults";
import { clip, quote } from "../common/errors";
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { Command, InvalidArgumentError, Option } from "commander";
import * as protobuf from "protobufjs";
import { portAloneMeant, withDefaultPort } from "./address";
import { explainError, statsLine } from "./cli-messages";
import { withProgress, writeRowsNdjson } from "./cli-rows";
import { TesseractClientError, toClientError } from "./errors";
import { abstractArrayFromJson, arrayFromJson, enumsByName, jsonToTree, treeToJson, type Format } from "./json-form";
import { numpyDtype } from "../common/numpy-arrays";
import { writeJacobianNpy } from "./npy-writer";
import { mergeOptionFlags, optionFlags, optionsFromJson, optionsToJson, positiveInteger, positiveNumber, seedValue, type OptionFlags } from "./options-json";
import { fetchRoot } from "./reflection-schema";
import { bearerToken, DEFAULT_MAX_MESSAGE_BYTES, TesseractClient, type FiniteDifferenceRequestOptions, type SparsityPatternInput, type TesseractClientOptions, type TesseractTypes } from "./tesseract-client";
import { tlsCredentials } from "./tls";
import type { MessageFns } from "./any";
import type { DescribeResponse, EvaluationStats } from "../generated/tesseract/v1/tesseract";
import { MAX_DEPTH, nestedDeeper } from "../common/nesting";
import { dropIpServerNameWarning } from "../common/ip-server-name";
import { exactJson, jsonInteger } from "../common/exact-json";
import { recordFrom } from "../common/records";
import { boolKeysForEncoding } from "../common/bool-keys";

interface ClientFlags extends OptionFlags {
  address: string;
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  format: Format;
  deadline?: number;
  maxMessageBytes: number;
}

type Payload = Record<string, unknown>;

/** A flag that the environment variable TESSERACT_GRPC_<FLAG> can set too. */
export function envOption(flags: string, description: string): Option {
  const long = flags.match(/--([a-z-]+)/)![1];
  return new Option(flags, description).env(`TESSERACT_GRPC_${long.replace(/-/g, "_").toUpperCase()}`);
}

/** --address's argument, refused when it is a port alone (commander then names the flag and says why). */
export function serverAddress(address: string): string {
  const meant = portAloneMeant(address);
  if (meant !== undefined) throw new InvalidArgumentError(`an address is HOST:PORT, not a port alone: ${meant}`);
  return address;
}

/**
 * --port on a command that calls a server: serve's flag, which a caller plausibly carries over. Hidden,
 * and refused naming --address (commander's "unknown option '--port'" named no fix).
 */
export function portFlagRefused(): Option {
  return new Option("--port <port>")
    .hideHelp()
    .argParser((port: string) => {
      const example = /^\d{1,5}$/.test(port) ? ` (--address 127.0.0.1:${port})` : "";
      throw new InvalidArgumentError(`--port is serve's flag; a server is called at --address HOST:PORT${example}`);
    });
}

/** Status codes for the CLI's own refusals of a payload, like the server's. */
const badPayload = (message: string) => new TesseractClientError(status.INVALID_ARGUMENT, message);

/** The contents of the file a flag names; the error names the flag and the path. */
export function readFlagFile(flag: string, path: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new Error(`${flag} ${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** The client commands' --token and --tls* flags, for the commands that read a server by reflection. */
export function connectionOptions(): Option[] {
  return [
    envOption("--token <token>", "bearer token for a server that requires one"),
    envOption("--tls", "use TLS, trusting the system's root certificates (implied by the --tls-* flags)"),
    envOption("--tls-ca <path>", "use TLS, trusting the CA certificate(s) in this PEM file"),
    // Not TESSERACT_GRPC_TLS_CERT/KEY: those are serve's own certificate, in the same environment as a container's health check.
    new Option("--tls-cert <path>", "use TLS with this client certificate (PEM) for mutual TLS; needs --tls-key").env("TESSERACT_GRPC_CLIENT_TLS_CERT"),
    new Option("--tls-key <path>", "the private key (PEM) of --tls-cert").env("TESSERACT_GRPC_CLIENT_TLS_KEY"),
  ];
}

/**
 * Client credentials from the `<prefix>-ca`, `<prefix>-cert`, `<prefix>-key` flags (PEM paths):
 * plaintext when none is set and `tls` is false, else TLS. Errors name the flags and paths.
 */
export function credentialsFromFlags(prefix: string, paths: { ca?: string; cert?: string; key?: string }, tls = false): grpc.ChannelCredentials {
  const { ca, cert, key } = paths;
  if (!tls && !ca && !cert && !key) return grpc.credentials.createInsecure();
  dropIpServerNameWarning();
  if (!cert !== !key) throw new Error(`${cert ? `${prefix}-key` : `${prefix}-cert`} is missing: a client certificate needs both ${prefix}-cert and ${prefix}-key`);
  const read = (flag: string, path: string | undefined) => (path ? readFlagFile(flag, path) : undefined);
  return tlsCredentials(
    { ca: read(`${prefix}-ca`, ca), cert: read(`${prefix}-cert`, cert), key: read(`${prefix}-key`, key) },
    { ca: `${prefix}-ca ${ca}`, cert: `${prefix}-cert ${cert}`, key: `${prefix}-key ${key}` },
  );
}

/** Every client command's credentials: plaintext, or TLS with --tls or any of --tls-ca, --tls-cert, --tls-key. */
function clientCredentials(flags: ClientFlags): grpc.ChannelCredentials {
  return credentialsFromFlags("--tls", { ca: flags.tlsCa, cert: flags.tlsCert, key: flags.tlsKey }, Boolean(flags.tls));
}

/** The SDK options of every client command (credentials, token, message limit). */
function clientOptions(flags: ClientFlags, credentials = clientCredentials(flags)): TesseractClientOptions {
  // Payloads are the .proto's JSON: errors name its fields (jac_inputs), not the SDK's.
  return { credentials, maxMessageBytes: flags.maxMessageBytes, token: flags.token, fieldNames: "wire" };
}

/** A payload file's text (0: standard input); one that cannot be read is named with why. */
function readPayloadFile(file: string | 0): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
    throw badPayload(`payload file ${file === 0 ? "(standard input)" : quote(file)} cannot be read: ${why}`);
  }
}

/** JSON text, `@path`, or `@-` (standard input). */
export function readPayload(text: string): Payload {
  const source = text.startsWith("@") ? readPayloadFile(text === "@-" ? 0 : text.slice(1)) : text;
  let payload: unknown;
  try {
    payload = JSON.parse(source);
  } catch (e) {
    const file = /^\S+\.json$/.test(text) ? ` (a file is read with @: @${text})` : "";
    throw badPayload(`payload is not valid JSON: ${(e as Error).message}${file}`);
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) throw badPayload(`payload is not a JSON object: expected {"inputs": {...}, ...}`);
  if (nestedDeeper(payload)) throw badPayload(`payload is nested more than ${MAX_DEPTH} deep`);
  return payload as Payload;
}

/** protobufjs types as the SDK's MessageFns (encode the SDK's tensor messages, decode to plain objects). */
function messageFns(type: () => protobuf.Type): MessageFns<unknown> {
  return {
    encode: (message) => ({ finish: () => type().encode(boolKeysForEncoding(type(), type().fromObject(message as Record<string, unknown>) as unknown as Record<string, unknown>)).finish() }),
    decode: (bytes) => exactLongs(type(), type().toObject(type().decode(bytes), { longs: String, enums: Number, defaults: false, arrays: true, objects: true })),
  };
}

const LONG = /^(u?int|sint|s?fixed)64$/;

/**
 * protobufjs' plain object with its 64-bit integers exact: values as numbers, bigints past 2^53
 * (`longs: Number` rounded them), and map keys as their digits (protobufjs keeps a 64-bit key as an
 * 8-byte hash: map<int64, Tensor> printed keys of control characters).
 */
function exactLongs(type: protobuf.Type, message: Record<string, unknown>): Record<string, unknown> {
  for (const field of type.fieldsArray) {
    const v = Object.hasOwn(message, field.name) ? message[field.name] : undefined;
    if (v === undefined || v === null) continue;
    const sub = field.resolve().resolvedType;
    const value = (x: unknown): unknown => (sub && "fields" in sub ? exactLongs(sub as protobuf.Type, x as Record<string, unknown>) : LONG.test(field.type) ? jsonInteger(BigInt(x as string)) : x);
    const keyType = field.map ? (field as unknown as protobuf.MapField).keyType : "";
    const key = (k: string): string => (LONG.test(keyType) ? protobuf.util.longFromHash(k, /^(uint|fixed)64$/.test(keyType)).toString() : k);
    if (field.map) message[field.name] = recordFrom(Object.entries(v as Record<string, unknown>).map(([k, x]) => [key(k), value(x)]));
    else if (field.repeated) message[field.name] = (v as unknown[]).map(value);
    else message[field.name] = value(v);
  }
  return message;
}

/** A client whose message types are fetched from the server (Describe, then reflection). */
async function connect(flags: ClientFlags) {
  const credentials = clientCredentials(flags);
  const resolved: { inputs?: protobuf.Type; outputs?: protobuf.Type } = {};
  const types: TesseractTypes<unknown, unknown> = { inputs: messageFns(() => resolved.inputs!), outputs: messageFns(() => resolved.outputs!) };
  const client = new TesseractClient<any, any>(flags.address, types, clientOptions(flags, credentials));
  const described = await client.describe(callOptions(flags));
  // Reflection needs the token too, on a server that has tokens.
  const needs = `the CLI reads ${clip(described.input_type)} and ${clip(described.output_type)} from: call a tesseract-grpc server (it offers reflection), or this one from the SDK with its .proto files`;
  const root = await fetchRoot(flags.address, credentials, [described.input_type, described.output_type], flags.token ? { interceptors: [bearerToken(flags.token)] } : {}, needs).catch((e: unknown) => {
    throw toClientError(e);
  });
  resolved.inputs = root.lookupType(described.input_type);
  resolved.outputs = root.lookupType(described.output_type);
  types.inputType = described.input_type;
  types.outputType = described.output_type;
  return { client, inputType: resolved.inputs, outputType: resolved.outputs };
}

function callOptions(flags: ClientFlags) {
  return flags.deadline === undefined ? {} : { deadline: flags.deadline };
}

/** Request options from the payload's "options" (enum values by short or proto name), overridden by flags. */
function fdOptions(payload: Payload, flags: ClientFlags): FiniteDifferenceRequestOptions | undefined {
  const options = mergeOptionFlags(optionsFromJson(payload.options, "payload.options"), flags);
  return Object.keys(options).length ? options : undefined;
}

function paths(payload: Payload, key: string): string[] {
  const value = payload[key];
  if (value === undefined) throw badPayload(`payload.${key} is missing: expected a list of path strings`);
  if (!Array.isArray(value) || !value.every((p) => typeof p === "string")) throw badPayload(`payload.${key}: expected a list of path strings`);
  return value;
}

/**
 * The payload's tangent or cotangent: an object of arrays by path. Anything else is named (a string
 * was read as a map of its characters, "tangent_vector.{0}: expected numbers"; a number or a list
 * went as no vector at all).
 */
function vectors(payload: Payload, key: string, by: "input" | "output"): Record<string, ReturnType<typeof arrayFromJson>> {
  const value = payload[key] ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw badPayload(`payload.${key} is ${shownJson(value)}: expected an object of arrays by ${by} path, {"<${by} path>": [...], ...}`);
  }
  return Object.fromEntries(Object.entries(value).map(([path, v]) => [path, arrayFromJson(v, `${key}.{${clip(path)}}`)]));
}

/** A caller's JSON value in a message, clipped. */
function shownJson(value: unknown): string {
  return clip(JSON.stringify(value));
}

function print(value: unknown, format: Format): void {
  process.stdout.write(`${exactJson(treeToJson(value, format))}\n`);
}

/** A gradient call's stats, on stderr (stdout holds the result). */
function printStats(stats: EvaluationStats): void {
  process.stderr.write(`${statsLine(stats)}\n`);
}

/** Describe with enum values by name. */
function describeJson(described: DescribeResponse): unknown {
  return { ...described, defaults: described.defaults && optionsToJson(described.defaults) };
}

/** A client command with the flags every one takes; `<payload>` unless `payloadRequired` is false. */
function clientCommand(program: Command, name: string, description: string, payloadRequired = true): Command {
  const command = program
    .command(name)
    .description(description)
    .addOption(envOption("--address <host:port>", "server to call (port 50051 when none is given)").default("127.0.0.1:50051").argParser(serverAddress));
  for (const option of [...connectionOptions(), portFlagRefused()]) command.addOption(option);
  // Commands without a payload (describe, health) print no arrays.
  if (payloadRequired) command.addOption(new Option("--format <format>", "output arrays as nested lists or base64 objects").choices(["json", "json+base64"]).default("json"));
  command
    .addOption(new Option("--deadline <ms>", "give up after this many milliseconds").argParser(positiveNumber))
    .addOption(envOption("--max-message-bytes <bytes>", "largest message received or sent").default(DEFAULT_MAX_MESSAGE_BYTES).argParser(positiveNumber));
  if (payloadRequired) command.argument("<payload>", "tesseract-core JSON: text, @file or @- (stdin)");
  return command;
}

/**
 * The finite-difference flags; --seed is the stochastic rule's unless the command says otherwise,
 * --sparsity-mode only where the structure is used (a Jacobian, a VJP, CheckGradients' columns; a JVP is one direction).
 */
function gradientOptions(command: Command, { seed = true, sparsity = true } = {}): Command {
  for (const option of optionFlags(seed, sparsity)) command.addOption(option);
  return command;
}

/**
 * The payload keys each command reads. One payload may serve several commands (the README's
 * mesh.json carries jac_, jvp_ and vjp_ keys), so a key another command reads is left alone; a key
 * none reads (a typo, a field of another API) is refused rather than silently dropped.
 */
const PAYLOAD_KEYS: Record<string, readonly string[]> = {
  apply: ["inputs"],
  "abstract-eval": ["inputs"],
  jacobian: ["inputs", "jac_inputs", "jac_outputs", "options", "sparsity"],
  jvp: ["inputs", "jvp_inputs", "jvp_outputs", "tangent_vector", "options"],
  vjp: ["inputs", "vjp_inputs", "vjp_outputs", "cotangent_vector", "options", "sparsity"],
  "check-gradients": ["inputs", "input_paths", "output_paths", "endpoints", "rtol", "atol", "max_evals", "seed", "options"],
};
const ANY_COMMAND_KEYS = new Set(Object.values(PAYLOAD_KEYS).flat());

function checkPayloadKeys(command: string, payload: Payload): void {
  const unknown = Object.keys(payload).find((key) => !ANY_COMMAND_KEYS.has(key));
  if (unknown !== undefined) throw badPayload(`payload has a key ${quote(unknown)} that no command reads; ${command} reads ${PAYLOAD_KEYS[command].map((k) => `"${k}"`).join(", ")}`);
}

/** A command's action: flags and payload in, and any failure as `tesseract-grpc <command>: <message>`, exit 1. */
function run(action: (flags: ClientFlags, payload: Payload) => Promise<void>) {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const flags = command.opts() as ClientFlags;
    flags.address = withDefaultPort(flags.address);
    try {
      const payload = typeof args[0] === "string" ? readPayload(args[0]) : {};
      checkPayloadKeys(command.name(), payload);
      await action(flags, payload);
    } catch (e) {
      // The reader went away (`| head`): nothing to tell it, as other commands stop quietly then.
      if ((e as NodeJS.ErrnoException).code === "EPIPE") return;
      process.stderr.write(`tesseract-grpc ${command.name()}: ${explainError(e, flags.address)}\n`);
      process.exitCode = 1;
    }
  };
}

/** Runs `use` with a client whose message types come from the server (Describe, then reflection). */
async function withClient(flags: ClientFlags, use: (client: TesseractClient<any, any>, inputType: protobuf.Type, outputType: protobuf.Type) => Promise<void>): Promise<void> {
  const { client, inputType, outputType } = await connect(flags);
  try {
    await use(client, inputType, outputType);
  } finally {
    client.close();
  }
}

/** Runs `use` with a client that needs no message types (describe, health). */
async function withPlainClient(flags: ClientFlags, use: (client: TesseractClient<unknown, unknown>) => Promise<void>): Promise<void> {
  const client = new TesseractClient<unknown, unknown>(flags.address, { inputs: messageFns(() => undefined as never), outputs: messageFns(() => undefined as never) }, clientOptions(flags));
  try {
    await use(client);
  } finally {
    client.close();
  }
}

/** The request fields the gradient commands share: {inputs, <kind>_inputs, <kind>_outputs, options, sparsity (jac and vjp)}. */
function gradientRequest(inputType: protobuf.Type, payload: Payload, flags: ClientFlags, kind: "jac" | "jvp" | "vjp") {
  const request = { inputs: jsonToTree(inputType, payload.inputs, "inputs"), inputPaths: paths(payload, `${kind}_inputs`), outputPaths: paths(payload, `${kind}_outputs`), options: fdOptions(payload, flags) };
  return kind === "jvp" ? request : { ...request, sparsity: sparsityPatterns(payload) };
}

/**
 * The payload's "sparsity": the Jacobian's structure, blocks of {"output_path", "input_path",
 * "output_index", "input_index"} as in JacobianRequest (docs/finite-differences.md, Sparse Jacobians). Its shape is
 * checked here; whether it fits the Tesseract, by the server.
 */
function sparsityPatterns(payload: Payload): SparsityPatternInput[] | undefined {
  const value = payload.sparsity;
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw badPayload('payload.sparsity: expected a list of {"output_path", "input_path", "output_index", "input_index"} blocks');
  return value.map((block: unknown, k) => {
    const at = `payload.sparsity[${k}]`;
    if (block === null || typeof block !== "object" || Array.isArray(block)) throw badPayload(`${at}: expected an object {"output_path", "input_path", "output_index", "input_index"}`);
    const fields = block as Record<string, unknown>;
    const extra = Object.keys(fields).find((key) => !["output_path", "input_path", "output_index", "input_index"].includes(key));
    if (extra !== undefined) throw badPayload(`${at} has a key ${quote(extra)}: expected "output_path", "input_path", "output_index", "input_index"`);
    const text = (key: string) => {
      if (typeof fields[key] !== "string") throw badPayload(`${at}.${key}: expected a path string`);
      return fields[key] as string;
    };
    const indices = (key: string) => {
      const list = fields[key];
      if (!Array.isArray(list) || !list.every((i) => Number.isSafeInteger(i) && i >= 0)) throw badPayload(`${at}.${key}: expected a list of whole numbers ≥ 0 (flat row-major indices)`);
      return list as number[];
    };
    return { output_path: text("output_path"), input_path: text("input_path"), output_index: indices("output_index"), input_index: indices("input_index") };
  });
}

const apply = (flags: ClientFlags, payload: Payload) =>
  withClient(flags, async (client, inputType, outputType) => {
    const outputs = await client.apply(jsonToTree(inputType, payload.inputs, "inputs"), callOptions(flags));
    print(enumsByName(outputType, outputs), flags.format);
  });

type JacobianFlags = ClientFlags & { stream?: boolean; out?: string; progress?: boolean };

/**
 * Unary: the nested Jacobian on stdout. `--stream`: the rows as NDJSON on stdout. `--out FILE.npy`
 * (streamed): the matrix into the file, its layout on stdout. Stats on stderr in every case.
 */
const jacobian = (flags: JacobianFlags, payload: Payload) =>
  withClient(flags, async (client, inputType) => {
    const request = gradientRequest(inputType, payload, flags, "jac");
    const call = callOptions(flags);
    if (!flags.stream && !flags.out) {
      const result = await client.jacobian(request, call);
      print(result.jacobian, flags.format);
      return printStats(result.stats);
    }
    const rows = withProgress(client.jacobianRows(request, call), flags.progress);
    if (flags.out) {
      const written = await writeJacobianNpy(rows, flags.out);
      process.stdout.write(`${JSON.stringify({ ...written, stats: undefined })}\n`);
      return printStats(written.stats);
    }
    printStats(await writeRowsNdjson(rows, flags.format));
  });

/** jvp and vjp differ only in names: {inputs, <kind>_inputs, <kind>_outputs, <vector field>}. */
const vectorProduct = (kind: "jvp" | "vjp") => (flags: ClientFlags, payload: Payload) =>
  withClient(flags, async (client, inputType) => {
    const request = gradientRequest(inputType, payload, flags, kind);
    const call = callOptions(flags);
    const { result, stats } = kind === "jvp" ? await client.jvp({ ...request, tangent: vectors(payload, "tangent_vector", "input") }, call) : await client.vjp({ ...request, cotangent: vectors(payload, "cotangent_vector", "output") }, call);
    print(result, flags.format);
    printStats(stats);
  });

type CheckFlags = ClientFlags & { rtol?: number; atol?: number; maxEvals?: number };

const checkGradients = (flags: CheckFlags, payload: Payload) =>
  withClient(flags, async (client, inputType) => {
    const optional = (key: string) => (payload[key] === undefined ? [] : paths(payload, key));
    const number = (key: string) => {
      const value = payload[key];
      if (value !== undefined && typeof value !== "number") throw badPayload(`payload.${key}: expected a number`);
      return value === undefined ? undefined : Number(value);
    };
    const response = await client.checkGradients(
      {
        inputs: jsonToTree(inputType, payload.inputs, "inputs"),
        inputPaths: optional("input_paths"),
        outputPaths: optional("output_paths"),
        endpoints: optional("endpoints"),
        rtol: flags.rtol ?? number("rtol"),
        atol: flags.atol ?? number("atol"),
        maxEvals: flags.maxEvals ?? number("max_evals"),
        seed: flags.seed !== undefined ? seedValue(flags.seed, "--seed") : payload.seed === undefined ? undefined : seedValue(payload.seed, "payload.seed"),
        // --seed is the sampling seed here, not the stochastic rule's.
        options: fdOptions(payload, { ...flags, seed: undefined }),
      },
      callOptions(flags),
    );
    // proto3 JSON spells non-finite doubles as strings.
    process.stdout.write(`${JSON.stringify(response, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v))}\n`);
    if (response.stats) printStats(response.stats);
    if (!response.passed) process.exitCode = 1;
  });

/** AbstractEval: `{"inputs"}` with arrays as `{"shape", "dtype"}`; the outputs as tesseract-core's abstract_eval answers them, `{path: {"shape", "dtype"}}`. */
const abstractEval = (flags: ClientFlags, payload: Payload) =>
  withClient(flags, async (client, inputType) => {
    const outputs = await client.abstractEval(jsonToTree(inputType, payload.inputs, "inputs", abstractArrayFromJson), callOptions(flags));
    process.stdout.write(`${JSON.stringify(Object.fromEntries(outputs.map((o) => [o.path, { shape: o.shape, dtype: numpyDtype(o.datatype as number) }])))}\n`);
  });

const describe = (flags: ClientFlags) => withPlainClient(flags, async (client) => print(describeJson(await client.describe(callOptions(flags))), "json"));

const health = (flags: ClientFlags & { service: string }) =>
  withPlainClient(flags, async (client) => {
    const status = await client.health(flags.service, callOptions(flags));
    process.stdout.write(`${status}\n`);
    if (status !== "SERVING") process.exitCode = 1;
  });

export function addClientCommands(program: Command): void {
  clientCommand(program, "apply", 'run the Tesseract: {"inputs": {...}}').action(run(apply));
  clientCommand(program, "abstract-eval", 'output shapes and dtypes from input shapes: {"inputs": {...}}, arrays as {"shape": [...], "dtype": "float64"}').action(run(abstractEval));
  gradientOptions(clientCommand(program, "jacobian", 'Jacobian: {"inputs", "jac_inputs", "jac_outputs", "options"?, "sparsity"?}'))
    .addOption(new Option("--stream", "use JacobianRows: the rows as NDJSON on stdout, as they arrive (bounded memory)").conflicts("out"))
    .addOption(
      new Option("--out <file.npy>", "stream the Jacobian into a NumPy .npy file, row by row (bounded memory); its layout on stdout").argParser((path: string) => {
        // An empty path was taken as no --out, and the Jacobian went to stdout.
        if (path === "") throw new InvalidArgumentError("expected a file path");
        // The file is one .npy array whatever its name: J.npz got .npy bytes, which no zip reader opens.
        const extension = /\.([^./]*)$/.exec(path)?.[1];
        if (extension !== undefined && extension.toLowerCase() !== "npy") {
          throw new InvalidArgumentError(`expected a .npy file (or a name without an extension): the Jacobian is written as one NumPy .npy array, not as .${extension.slice(0, 20)}`);
        }
        return path;
      }),
    )
    .option("--progress", "draw the progress bar of --stream/--out on stderr even when it is not a terminal")
    .action(run(jacobian));
  gradientOptions(clientCommand(program, "jvp", 'Jacobian-vector product: {"inputs", "jvp_inputs", "jvp_outputs", "tangent_vector", "options"?}'), { sparsity: false }).action(run(vectorProduct("jvp")));
  gradientOptions(clientCommand(program, "vjp", 'vector-Jacobian product: {"inputs", "vjp_inputs", "vjp_outputs", "cotangent_vector", "options"?, "sparsity"?}')).action(run(vectorProduct("vjp")));
  gradientOptions(
    clientCommand(
      program,
      "check-gradients",
      'analytic gradients against finite differences: {"inputs", "input_paths"?, "output_paths"?, "endpoints"?, "rtol"?, "atol"?, "max_evals"?, "seed"?, "options"?}; exits 1 when a check fails',
    )
      .addOption(new Option("--rtol <r>", `relative tolerance (default ${CHECK_DEFAULTS.rtol})`).argParser(positiveNumber))
      .addOption(new Option("--atol <a>", `absolute tolerance (default ${CHECK_DEFAULTS.atol})`).argParser(positiveNumber))
      .addOption(new Option("--max-evals <n>", `bound on apply calls (default ${CHECK_DEFAULTS.maxEvals})`).argParser(positiveInteger))
      .option("--seed <seed>", `which elements are sampled (default ${CHECK_DEFAULTS.seed})`),
    { seed: false },
  ).action(run(checkGradients));
  clientCommand(program, "describe", "name, types, differentiable paths, defaults and endpoints", false).action(run(describe));
  clientCommand(program, "health", "exit 0 when the server (or --service) is SERVING", false)
    .option("--service <name>", 'service to ask about ("" is the whole server)', "")
    .action(run(health as (flags: ClientFlags) => Promise<void>));
}
