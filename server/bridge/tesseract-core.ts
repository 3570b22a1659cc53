/**
 * A Tesseract that a tesseract-core runtime serves over HTTP (`serve http://host:port[,http://…]`),
 * served here through the same engine: the schema comes from the runtime's `/openapi.json`
 * (schema/openapi-proto.ts), and every evaluation is one `POST /apply` with the inputs as
 * tesseract-core JSON, arrays as base64 array objects, answered in kind (`Accept:
 * application/json+base64`). Evaluations run up to `--concurrency` at once (eval/concurrent.ts),
 * round-robin over the URLs; apply is idempotent, so one that cannot reach its runtime (connection
 * refused or reset) goes to the next. Statuses: 422 → INVALID_ARGUMENT with the detail's location
 * and message; any other failure → UNKNOWN naming the runtime and the status; no runtime reachable
 * → UNAVAILABLE. Not forwarded: abstract_eval and the runtime's own gradient endpoints (gradients
 * are this server's finite differences); binref and lz4 arrays are not read.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { clip, Code, isTesseractError, TesseractError } from "../../common/errors";
import { isPlainObject } from "../../common/records";
import { inputsAny, messageJson, type EnumStrings } from "../schema/json-messages";
import { protoFromOpenApi } from "../schema/openapi-proto";
import { loadRootFromText, type MessageSchema } from "../schema/schema";
import { TesseractRuntime } from "../runtime";
import type { AnyTesseract } from "../tesseract";

/** `serve` names a tesseract-core runtime by URL (several, comma-separated). */
export function isTesseractCoreUrl(spec: string): boolean {
  return /^https?:\/\//i.test(spec.trim());
}

/** The URLs of `spec`, without trailing slashes. */
export function parseUrls(spec: string): string[] {
  const urls = spec
    .split(",")
    .map((u) => u.trim().replace(/\/+$/, ""))
    .filter(Boolean);
  for (const u of urls) {
    if (!isTesseractCoreUrl(u)) throw new Error(`"${u}" is not an http:// or https:// URL of a tesseract-core runtime`);
    new URL(u); // throws naming what is wrong
  }
  if (urls.length === 0) throw new Error(`"${spec}" names no tesseract-core runtime URL`);
  return urls;
}

/** How long the start may wait for `/openapi.json`. */
const OPENAPI_TIMEOUT_MS = 10_000;

const reason = (e: unknown): string => {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (e instanceof Error ? e.message : String(e));
};

/** `/apply` on tesseract-core runtimes, round-robin; the answer decoded into an outputs tree. */
export class TesseractCoreClient {
  private next = 0;

  constructor(
    readonly urls: readonly string[],
    private readonly inputs: MessageSchema,
    private readonly outputs: MessageSchema,
    private readonly enumStrings: EnumStrings,
  ) {}

  async apply(tree: Record<string, unknown>, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const body = JSON.stringify({ inputs: messageJson(this.inputs.type, tree, "base64", this.enumStrings) });
    const first = this.next++ % this.urls.length;
    const failures: string[] = [];
    for (let i = 0; i < this.urls.length; i++) {
      const url = this.urls[(first + i) % this.urls.length];
      let status: number;
      let text: string;
      try {
        const response = await fetch(`${url}/apply`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json+base64" },
          body,
          signal,
        });
        status = response.status;
        text = await response.text();
      } catch (e) {
        if (signal?.aborted) throw new TesseractError(Code.CANCELLED, `apply on ${url} was cancelled`, { cause: e });
        failures.push(`${url}: ${reason(e)}`); // not reached or reset: apply is idempotent, the next runtime gets it
        continue;
      }
      if (status === 422) throw new TesseractError(Code.INVALID_ARGUMENT, `tesseract-core (${url}) refused the inputs: ${validationDetail(text)}`);
      if (status < 200 || status >= 300) throw new TesseractError(Code.UNKNOWN, `apply on ${url} failed with HTTP ${status}: ${clip(text.trim())}`);
      return this.decodeOutputs(text, url);
    }
    throw new TesseractError(Code.UNAVAILABLE, `no tesseract-core runtime answered POST /apply (${failures.join("; ")})`);
  }

  /** tesseract-core's outputs JSON -> the outputs tree, as if a gRPC Tesseract had returned it. */
  private decodeOutputs(text: string, url: string): Record<string, unknown> {
    try {
      const any = inputsAny(this.outputs, JSON.parse(text), false, { field: "outputs", enumStrings: this.enumStrings });
      return this.outputs.decodeAny(any, "outputs");
    } catch (e) {
      const message = isTesseractError(e) || e instanceof SyntaxError ? e.message : String(e);
      throw new TesseractError(Code.UNKNOWN, `apply on ${url} answered outputs that do not match ${this.outputs.fullName}: ${clip(message)}`, { cause: e });
    }
  }
}

/** A 422 body's first details as `location: message`, clipped. */
export function validationDetail(text: string): string {
  let detail: unknown;
  try {
    detail = (JSON.parse(text) as { detail?: unknown }).detail;
  } catch {
    return clip(text.trim());
  }
  if (!Array.isArray(detail)) return clip(typeof detail === "string" ? detail : text.trim());
  const items = detail.slice(0, 3).map((d) => {
    const loc = Array.isArray(d?.loc) ? (d.loc as unknown[]).filter((x, i) => !(i === 0 && x === "body")) : [];
    const where = loc.map((x) => (typeof x === "number" ? `[${x}]` : String(x))).join(".");
    return `${clip(where || "(request)")}: ${clip(String(d?.msg ?? "invalid"))}`;
  });
  return items.join("; ") + (detail.length > 3 ? `; … and ${detail.length - 3} more` : "");
}

/** GET `/openapi.json` from the first URL that answers. */
async function fetchOpenApi(urls: readonly string[]): Promise<{ url: string; doc: unknown }> {
  const failures: string[] = [];
  for (const url of urls) {
    let response: Response;
    try {
      response = await fetch(`${url}/openapi.json`, { signal: AbortSignal.timeout(OPENAPI_TIMEOUT_MS), headers: { accept: "application/json" } });
    } catch (e) {
      failures.push(`${url}: ${reason(e)}`);
      continue;
    }
    const text = await response.text();
    if (!response.ok) throw new Error(`${url}/openapi.json answered HTTP ${response.status}; expected a tesseract-core runtime's OpenAPI document`);
    try {
      return { url, doc: JSON.parse(text) };
    } catch {
      throw new Error(`${url}/openapi.json is not JSON; expected a tesseract-core runtime's OpenAPI document`);
    }
  }
  throw new Error(`no tesseract-core runtime answered GET /openapi.json (${failures.join("; ")})`);
}

export interface TesseractCoreOptions {
  /** The generated schema's protobuf package (default: from `info.title`, e.g. tesseract_core.mesh_stats.v1). */
  protoPackage?: string;
}

/**
 * Loads the Tesseract that tesseract-core serves at `spec` (one URL or several, comma-separated):
 * its schema from the first that answers, evaluations on all of them.
 */
export async function loadTesseractCore(spec: string, options: TesseractCoreOptions = {}): Promise<TesseractRuntime> {
  const urls = parseUrls(spec);
  const { url, doc } = await fetchOpenApi(urls);
  let generated: ReturnType<typeof protoFromOpenApi>;
  try {
    generated = protoFromOpenApi(doc, { packageName: options.protoPackage });
  } catch (e) {
    throw new Error(`${url}/openapi.json: ${(e as Error).message}`);
  }
  const root = loadRootFromText(generated.text);
  // Reflection and the gRPC service definition load .proto files: the generated one, written out.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tesseract-grpc-bridge-"));
  const file = path.join(dir, ...generated.packageName.split("."), "tesseract.proto");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, generated.text);
  const info = isPlainObject((doc as { info?: unknown }).info) ? (doc as { info: Record<string, unknown> }).info : {};
  let client: TesseractCoreClient | undefined;
  const definition: AnyTesseract = {
    name: String(info.title ?? "Tesseract"),
    version: String(info.version ?? ""),
    description: String(info.description ?? `served by tesseract-core at ${urls.join(", ")}`),
    inputType: generated.inputType,
    outputType: generated.outputType,
    protoFiles: [file],
    apply: (inputs: Record<string, unknown>) => client!.apply(inputs),
  };
  const runtime = TesseractRuntime.fromRoot(definition, {
    root,
    protoFiles: [file],
    protoIncludeDirs: [dir],
    remoteApply: (inputs, signal) => client!.apply(inputs, signal),
  });
  client = new TesseractCoreClient(urls, runtime.schema.inputs, runtime.schema.outputs, generated.enumStrings);
  return runtime;
}
