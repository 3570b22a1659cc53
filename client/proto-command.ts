/**
 * `tesseract-grpc proto --address HOST:PORT --out DIR`: the .proto files of the Tesseract a server
 * serves (the contract and the Tesseract's own, whatever its source: bundled, a module, or a
 * tesseract-core runtime), fetched by reflection and written under their real names, so that any
 * language's protoc or buf can generate stubs for it. The well-known types (google/protobuf/*.proto)
 * ship with every protoc and buf and are not written.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { Command, Option } from "commander";
import { TesseractClient as GeneratedClient, type DescribeResponse } from "../generated/tesseract/v1/tesseract";
import { credentialsFromFlags, envOption } from "./cli-commands";
import { printProto } from "./proto-text";
import { fetchDescriptors } from "./reflection-schema";
import { bearerToken } from "./tesseract-client";

const SERVICE_NAME = "tesseract.v1.Tesseract";

interface ProtoFlags {
  address: string;
  out: string;
  token?: string;
  tls?: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

/**
 * Writes the served Tesseract's .proto files under `out` (folders as their names say); returns the
 * paths written.
 */
export async function writeProtoFiles(address: string, credentials: grpc.ChannelCredentials, out: string, options: grpc.ClientOptions = {}): Promise<string[]> {
  const described = await describe(address, credentials, options);
  const { files, registry } = await fetchDescriptors(address, credentials, [SERVICE_NAME, described.input_type, described.output_type], options);
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
  program
    .command("proto")
    .description("write the served Tesseract's .proto files (the contract and its own), fetched by reflection, under --out")
    .requiredOption("--out <dir>", "folder to write them in (created if needed); files keep their names, e.g. tesseract/v1/tesseract.proto")
    .addOption(envOption("--address <host:port>", "server to ask").default("127.0.0.1:50051"))
    .addOption(envOption("--token <token>", "bearer token for a server that requires one"))
    .addOption(envOption("--tls", "use TLS, trusting the system's root certificates (implied by the --tls-* flags)"))
    .addOption(envOption("--tls-ca <path>", "use TLS, trusting the CA certificate(s) in this PEM file"))
    .addOption(new Option("--tls-cert <path>", "use TLS with this client certificate (PEM) for mutual TLS; needs --tls-key").env("TESSERACT_GRPC_CLIENT_TLS_CERT"))
    .addOption(new Option("--tls-key <path>", "the private key (PEM) of --tls-cert").env("TESSERACT_GRPC_CLIENT_TLS_KEY"))
    .action(async (flags: ProtoFlags) => {
      try {
        const credentials = credentialsFromFlags("--tls", { ca: flags.tlsCa, cert: flags.tlsCert, key: flags.tlsKey }, Boolean(flags.tls));
        const options = flags.token ? { interceptors: [bearerToken(flags.token)] } : {};
        for (const file of await writeProtoFiles(flags.address, credentials, flags.out, options)) process.stdout.write(`${file}\n`);
      } catch (e) {
        const error = e as Error & { details?: string; code?: number };
        const message = error.code !== undefined && error.details !== undefined ? `${grpc.status[error.code]}: ${error.details}` : error.message;
        process.stderr.write(`tesseract-grpc proto: ${message}\n`);
        process.exitCode = 1;
      }
    });
}
