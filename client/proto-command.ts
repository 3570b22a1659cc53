/**
 * `tesseract-grpc proto --address HOST:PORT --out DIR`: the .proto files of the Tesseract a server
 * serves (the contract and the Tesseract's own, whatever its source: bundled, a module, or a
 * tesseract-core runtime), fetched by reflection and written under their real names, so that any
 * language's protoc or buf can generate stubs for it. The well-known types (google/protobuf/*.proto)
 * ship with every protoc and buf and are not written. `generate --address` reads a server the same
 * way (fetchTesseractFiles), with the same connection flags.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { Command } from "commander";
import { TesseractClient as GeneratedClient, type DescribeResponse } from "../generated/tesseract/v1/tesseract";
import { withDefaultPort } from "./address";
import { connectionOptions, credentialsFromFlags, envOption, portFlagRefused, serverAddress } from "./cli-commands";
import { explainError } from "./cli-messages";
import { toClientError } from "./errors";
import { printProto } from "./proto-text";
import { fetchDescriptors, type ReflectedFiles } from "./reflection-schema";
import { bearerToken } from "./tesseract-client";

const SERVICE_NAME = "tesseract.v1.Tesseract";

/** The flags that say how to reach a server (besides --address): a token and TLS. */
export interface ConnectionFlags {
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

interface ProtoFlags extends ConnectionFlags {
  address: string;
  out: string;
}

/** How to connect, from the flags: credentials, and the token's interceptor. */
export function connectionFrom(flags: ConnectionFlags): { credentials: grpc.ChannelCredentials; options: grpc.ClientOptions } {
  const credentials = credentialsFromFlags("--tls", { ca: flags.tlsCa, cert: flags.tlsCert, key: flags.tlsKey }, Boolean(flags.tls));
  return { credentials, options: flags.token ? { interceptors: [bearerToken(flags.token)] } : {} };
}

/** A failure of a command that reads a server, as the client commands print it (a gRPC status with the next step to take). */
export function failureLine(e: unknown, address: string): string {
  return explainError(typeof (e as { code?: unknown }).code === "number" ? toClientError(e) : e, address);
}

export interface TesseractFiles extends ReflectedFiles {
  /** Names of the files declaring the Tesseract's input and output messages. */
  messageFiles: string[];
}

/**
 * The files declaring the served Tesseract's input and output messages (and its service, with
 * `service`) and every file they import, by reflection.
 */
export async function fetchTesseractFiles(address: string, credentials: grpc.ChannelCredentials, options: grpc.ClientOptions = {}, service = false): Promise<TesseractFiles> {
  const described = await describe(address, credentials, options);
  const messages = [described.input_type, described.output_type];
  const reflected = await fetchDescriptors(address, credentials, service ? [SERVICE_NAME, ...messages] : messages, options);
  const fileOf = (type: string) => {
    const message = reflected.registry.getMessage(type);
    if (!message) throw new Error(`reflection: the server describes no message ${JSON.stringify(type)}`);
    return message.file.proto.name;
  };
  return { ...reflected, messageFiles: [...new Set(messages.map(fileOf))] };
}

/**
 * Writes the served Tesseract's .proto files under `out` (folders as their names say); returns the
 * paths written.
 */
export async function writeProtoFiles(address: string, credentials: grpc.ChannelCredentials, out: string, options: grpc.ClientOptions = {}): Promise<string[]> {
  const { files, registry } = await fetchTesseractFiles(address, credentials, options, true);
  const written: string[] = [];
  for (const file of files) {
    if (file.name!.startsWith("google/protobuf/")) continue;
    const target = path.resolve(out, ...file.name!.split("/"));
    if (!target.startsWith(path.resolve(out) + path.sep)) throw new Error(`the server names a file outside --out: ${JSON.stringify(file.name)}`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, printProto(file, registry));
    written.push(target);
  }
  return written;
}

function describe(address: string, credentials: grpc.ChannelCredentials, options: grpc.ClientOptions): Promise<DescribeResponse> {
  const client = new GeneratedClient(address, credentials, options);
  return new Promise<DescribeResponse>((resolve, reject) => client.describe({}, (error, response) => (error ? reject(error) : resolve(response)))).finally(() => client.close());
}

export function addProtoCommand(program: Command): void {
  const command = program
    .command("proto")
    .description("write the served Tesseract's .proto files (the contract and its own), fetched by reflection, under --out")
    .requiredOption("--out <dir>", "folder to write them in (created if needed); files keep their names, e.g. tesseract/v1/tesseract.proto")
    .addOption(envOption("--address <host:port>", "server to ask (port 50051 when none is given)").default("127.0.0.1:50051").argParser(serverAddress));
  for (const option of [...connectionOptions(), portFlagRefused()]) command.addOption(option);
  command.action(async (flags: ProtoFlags) => {
    const address = withDefaultPort(flags.address);
    try {
      const { credentials, options } = connectionFrom(flags);
      for (const file of await writeProtoFiles(address, credentials, flags.out, options)) process.stdout.write(`${file}\n`);
    } catch (e) {
      process.stderr.write(`tesseract-grpc proto: ${failureLine(e, address)}\n`);
      process.exitCode = 1;
    }
  });
}
