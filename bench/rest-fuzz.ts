/**
 * The REST API (`serve --http-port`) fed raw HTTP/1.1 bytes, against servers in child processes (so
 * that a crash is seen and recorded):
 *
 *   npm run bench:rest-fuzz [-- --seconds 60 --seed 1 --count N --timeout-ms 5000 --lanes 4]
 *   (or REST_FUZZ_SECONDS, REST_FUZZ_SEED, REST_FUZZ_COUNT, REST_FUZZ_TIMEOUT_MS, REST_FUZZ_LANES)
 *
 * First a fixed catalogue of byte sequences for vectoradd and meshstats (malformed request lines,
 * bad and duplicate Content-Length, chunked bodies cut or malformed, many and huge headers, pipelined
 * requests, invalid UTF-8, JSON edge cases, every route, wrong methods), then seeded mutations of
 * valid bodies of every endpoint (values swapped for hostile JSON: 1e400, -0, huge integers, NaN
 * literals, lone surrogates, deep nesting, `__proto__` keys, duplicate keys, bad base64, shapes that
 * overflow), until the time or the count is up. Every request must be answered, with a status below
 * 500 and, for 422, tesseract-core's `{"detail": [{type, loc, msg}]}`; the servers must stay up and
 * keep their file descriptors. Prints a table of outcomes by route × status and every distinct
 * failure with its bytes; writes bench/results/rest-fuzz.json. Exits 1 if anything failed.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { seededGenerator, type SeededGenerator } from "../server/fd/random";
import { serveProcess, type ServeProcess } from "../test/helpers";
import { numericArg } from "./numeric-arg";

const arg = numericArg;
const SECONDS = arg("seconds", "REST_FUZZ_SECONDS", 60);
const SEED = arg("seed", "REST_FUZZ_SEED", 1);
const COUNT = arg("count", "REST_FUZZ_COUNT", Infinity);
const TIMEOUT_MS = arg("timeout-ms", "REST_FUZZ_TIMEOUT_MS", 5000);
const LANES = arg("lanes", "REST_FUZZ_LANES", 4);
/** Largest body the servers take: small, so that over-limit cases stay cheap. */
const MAX_MESSAGE = 1 << 20;
/** An error body longer than this is a failure (gRPC's status bound is 1 KiB; 422s list up to 100 entries). */
const MAX_ERROR_BODY = 64 << 10;

type TesseractName = "vectoradd" | "meshstats";
interface Case {
  id: string;
  tesseract: TesseractName;
  route: string;
  family: string;
  bytes: Buffer;
}
interface Answer {
  statuses: number[];
  bodies: string[];
  /** How the connection ended: "closed" (by the server, after answering), "timeout", "reset". */
  end: string;
  ms: number;
}

// ---- bodies --------------------------------------------------------------------------------------

const array = (buffer: unknown, shape: number[], dtype = "float64") => ({ shape, dtype, data: { buffer, encoding: "json" } });
const b64 = (values: number[]) => ({ buffer: Buffer.from(Float64Array.from(values).buffer).toString("base64"), encoding: "base64" });
const VECTORADD = { a: array([1, 2], [2]), b: { shape: [2], dtype: "float64", data: b64([3, 4]) }, s: array(2, []) };
const MESH = {
  mesh: {
    n_points: 4,
    n_cells: 1,
    points: { shape: [4, 3], dtype: "float64", data: b64(Array.from({ length: 12 }, (_, i) => Math.sin(i))) },
    num_points_per_cell: array([4], [1]),
    cell_connectivity: array([0, 1, 2, 3], [4], "int32"),
  },
};
const PATHS = { vectoradd: { input: "a", output: "result", outShape: [2] }, meshstats: { input: "mesh.points", output: "statistics.barycenter", outShape: [3] } };

/** A valid body of each endpoint, by Tesseract. */
function validBodies(t: TesseractName): Record<string, unknown> {
  const inputs = t === "vectoradd" ? VECTORADD : MESH;
  const { input, output, outShape } = PATHS[t];
  const inShape = t === "vectoradd" ? [2] : [4, 3];
  const ones = (shape: number[]) => array(new Array(shape.reduce((a, b) => a * b, 1)).fill(1), shape);
  return {
    apply: { inputs },
    ...(t === "vectoradd" ? { abstract_eval: { inputs: { a: { shape: [2], dtype: "float64" }, b: { shape: [2], dtype: "float64" } } } } : {}),
    jacobian: { inputs, jac_inputs: [input], jac_outputs: [output], options: { algorithm: "central", eps: 1e-6 } },
    jacobian_vector_product: { inputs, jvp_inputs: [input], jvp_outputs: [output], tangent_vector: { [input]: ones(inShape) } },
    vector_jacobian_product: { inputs, vjp_inputs: [input], vjp_outputs: [output], cotangent_vector: { [output]: ones(outShape) } },
  };
}

/** A JSON value written as text, where some leaves are raw text that JSON.stringify cannot write. */
class Raw {
  constructor(readonly text: string) {}
}
function write(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(write).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = value instanceof Map ? [...value] : Object.entries(value);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${write(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Values that have broken JSON readers somewhere. */
const HOSTILE: (() => unknown)[] = [
  () => new Raw("1e400"),
  () => new Raw("-1e400"),
  () => new Raw("-0"),
  () => new Raw("123456789012345678901234567890"),
  () => new Raw("9007199254740993"),
  () => new Raw("NaN"),
  () => new Raw("Infinity"),
  () => new Raw("-Infinity"),
  () => new Raw('"\\ud800"'),
  () => new Raw('"\\udc00x\\ud800"'),
  () => new Raw("1e-400"),
  () => new Raw("0.1e1"),
  () => new Raw("[".repeat(200) + "]".repeat(200)),
  () => new Raw('{"a":'.repeat(150) + "1" + "}".repeat(150)),
  () => "x".repeat(100_000),
  () => "",
  () => "__proto__",
  () => "constructor",
  () => "float128",
  () => "bfloat16",
  () => "!!!!",
  () => "AAA",
  () => "A===",
  () => "AAAAAAAAAAA=",
  () => 2 ** 53,
  () => -1,
  () => 1.5,
  () => 0,
  () => 1e308,
  () => [],
  () => [[]],
  () => [2 ** 31, 2 ** 31, 2 ** 31],
  () => [1e9, 1e9],
  () => [-3],
  () => [NaN],
  () => ({}),
  () => null,
  () => true,
  () => new Map([["__proto__", { x: 1 }]]),
  () => new Map([["constructor", { prototype: 1 }]]),
  () => new Array(10_000).fill(0),
];

/** Seeded mutations of a valid body: values swapped, keys added, deleted or duplicated. */
class Mutator {
  private readonly rng: SeededGenerator;
  constructor(seed: number) {
    this.rng = seededGenerator(BigInt(seed));
  }
  int(n: number): number {
    return uniformInt(this.rng, 0, n - 1);
  }
  /** Every path to a value in `tree`. */
  private paths(tree: unknown, at: (string | number)[] = []): (string | number)[][] {
    const here = [at];
    if (tree instanceof Raw || tree instanceof Map) return here;
    if (Array.isArray(tree)) return [...here, ...tree.slice(0, 16).flatMap((v, i) => this.paths(v, [...at, i]))];
    if (tree !== null && typeof tree === "object") return [...here, ...Object.entries(tree).flatMap(([k, v]) => this.paths(v, [...at, k]))];
    return here;
  }
  /** `body` with 1 to 3 mutations; the recipe says which. */
  mutate(body: unknown): { tree: unknown; recipe: string[] } {
    let tree: unknown = structuredClone(body);
    const recipe: string[] = [];
    for (let m = 1 + this.int(3); m > 0; m--) {
      const paths = this.paths(tree).filter((p) => p.length > 0);
      if (paths.length === 0) break;
      const at = paths[this.int(paths.length)];
      const kind = this.int(5);
      const parent = at.slice(0, -1).reduce<any>((node, k) => node[k], tree);
      const key = at[at.length - 1];
      if (parent instanceof Raw || parent instanceof Map || parent === null || typeof parent !== "object") continue;
      if (kind <= 1) {
        const h = this.int(HOSTILE.length);
        parent[key] = HOSTILE[h]();
        recipe.push(`${at.join(".")} = hostile[${h}]`);
      } else if (kind === 2 && !Array.isArray(parent)) {
        delete parent[key];
        recipe.push(`delete ${at.join(".")}`);
      } else if (kind === 3 && !Array.isArray(parent)) {
        // The key again, last (the one JSON.parse keeps), written as text: the parent is text from here on.
        const entries: [string, unknown][] = [...Object.entries(parent), [String(key), HOSTILE[this.int(HOSTILE.length)]()]];
        const written = new Raw(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${write(v)}`).join(",")}}`);
        if (at.length === 1) tree = written;
        else at.slice(0, -2).reduce<any>((node, k) => node[k], tree)[at[at.length - 2]] = written;
        recipe.push(`duplicate key ${at.join(".")}`);
        break;
      } else {
        parent[key] = [parent[key]];
        recipe.push(`wrap ${at.join(".")} in a list`);
      }
    }
    return { tree, recipe };
  }
}

// ---- requests ------------------------------------------------------------------------------------

const post = (route: string, body: string | Buffer, headers = "") =>
  Buffer.concat([Buffer.from(`POST /${route} HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}Connection: close\r\n\r\n`), Buffer.from(body)]);
const raw = (text: string) => Buffer.from(text, "latin1");

/** The fixed catalogue: byte sequences a parser or a router may trip over. */
function catalogue(t: TesseractName): Case[] {
  const valid = validBodies(t);
  const apply = write(valid.apply);
  const jacobian = write(valid.jacobian);
  const cases: [string, string, Buffer][] = [
    ["-", "request line", raw("GARBAGE\r\n\r\n")],
    ["-", "request line", raw("\x00\x01\x02\xff\r\n\r\n")],
    ["-", "request line", raw("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")],
    ["-", "request line", raw(`GET /${"a".repeat(100_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["apply", "content-length", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n${apply}`)],
    ["apply", "content-length", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`)],
    ["apply", "content-length", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n`)],
    ["apply", "content-length", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)],
    ["apply", "content-length", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_MESSAGE + 1}\r\nConnection: close\r\n\r\n${" ".repeat(MAX_MESSAGE + 1)}`)],
    ["apply", "content-length", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${MAX_MESSAGE + 1}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`)],
    ["apply", "chunked", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`)],
    ["apply", "chunked", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffffff\r\nabc`)],
    ["apply", "chunked", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${Buffer.byteLength(apply).toString(16)};ext=1\r\n${apply}\r\n0\r\nX-Trailer: 1\r\n\r\n`)],
    ["apply", "chunked", raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)],
    ["apply", "content-encoding", post("apply", apply, "Content-Encoding: gzip\r\n")],
    ["health", "headers", raw(`GET /health HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: y\r\n`).join("")}Connection: close\r\n\r\n`)],
    ["health", "headers", raw(`GET /health HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(100_000)}\r\nConnection: close\r\n\r\n`)],
    ["health", "headers", raw(`GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: \xff\xfe\r\nConnection: close\r\n\r\n`)],
    ["apply", "headers", post("apply", apply, "X-Request-Id: \xff\xfe\u0001\r\n")],
    ["apply", "headers", post("apply", apply, "Accept: application/json;q=abc, */*;q=NaN\r\n")],
    ["apply", "headers", post("apply", apply, "Accept: application/json+binref\r\n")],
    ["apply", "headers", post("apply", apply, "Authorization: Bearer \xff\r\n")],
    ["-", "pipelined", raw(`GET /health HTTP/1.1\r\nHost: x\r\n\r\n` + `POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(apply)}\r\n\r\n${apply}` + `GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "pipelined", raw(Array.from({ length: 50 }, () => `POST /jacobian HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(jacobian)}\r\n\r\n${jacobian}`).join("") + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")],
    ["apply", "utf-8", Buffer.concat([raw(`POST /apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nConnection: close\r\n\r\n`), Buffer.from([0x22, 0xff, 0xfe, 0x22])])],
    ["apply", "utf-8", post("apply", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(apply)]))],
    ["apply", "utf-8", post("apply", Buffer.from(apply, "utf16le"))],
    ["apply", "json", post("apply", "")],
    ["apply", "json", post("apply", "null")],
    ["apply", "json", post("apply", "[".repeat(100_000) + "]".repeat(100_000))],
    ["apply", "json", post("apply", `{"inputs":${"[".repeat(100_000)}NaN${"]".repeat(100_000)}}`)],
    ["apply", "json", post("apply", `{"inputs":{"__proto__":{"a":1}}}`)],
    ["apply", "json", post("apply", `{"__proto__":{"inputs":1}}`)],
    ["apply", "json", post("apply", `{"inputs":{"a":NaN,"b":-Infinity}}`)],
    ["apply", "json", post("apply", `{"inputs":"${"\\ud800".repeat(10_000)}"}`)],
    ["jacobian", "json", post("jacobian?eps=1e400&eps=2&algorithm[]=x&__proto__=1", jacobian)],
    ["jacobian", "json", post("jacobian?%ZZ=%", jacobian)],
    ["-", "routes", raw(`GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "routes", raw(`GET /apply HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "routes", raw(`OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "routes", raw(`OPTIONS /apply HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "routes", raw(`DELETE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "routes", raw(`PATCH /jacobian HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)],
    ["-", "routes", raw(`POST /apply%00 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)],
    ["-", "routes", raw(`POST /%2e%2e/apply HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)],
    ["-", "routes", raw(`POST http://other/apply HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(apply)}\r\nConnection: close\r\n\r\n${apply}`)],
    ["-", "routes", raw(`GET /health HTTP/1.0\r\n\r\n`)],
    ["-", "routes", raw(`GET /health HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n`)],
    ["-", "routes", post("test", "{}")],
  ];
  return cases.map(([route, family, bytes], i) => ({ id: `${t}:catalogue:${i}`, tesseract: t, route, family, bytes }));
}

/** Seeded mutations of every endpoint's valid body, round-robin. */
function* mutations(seed: number): Generator<Case> {
  const mutator = new Mutator(seed);
  const all = (["vectoradd", "meshstats"] as const).flatMap((t) => Object.entries(validBodies(t)).map(([route, body]) => ({ t, route, body })));
  for (let n = 0; ; n++) {
    const { t, route, body } = all[n % all.length];
    const { tree, recipe } = mutator.mutate(body);
    yield { id: `${t}:${seed}:${n}`, tesseract: t, route, family: recipe.join("; ") || "unchanged", bytes: post(route, write(tree)) };
  }
}

/** Sends `bytes` on a connection of its own; the answers' statuses and bodies, and how it ended. */
function send(port: number, bytes: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (end: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1])).filter((s) => s !== 100);
      const bodies = text.split(/HTTP\/1\.[01] \d{3}[^\r]*\r\n(?:[^\r]+\r\n)*\r\n/).slice(1);
      resolve({ statuses, bodies, end, ms: performance.now() - started });
    };
    const timer = setTimeout(() => finish("timeout"), TIMEOUT_MS);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("close", () => finish("closed"));
    socket.on("error", (e: NodeJS.ErrnoException) => finish(e.code === "ECONNRESET" ? "reset" : `error ${e.code}`));
    // Not half-closed after the request: Node's HTTP server drops a request whose client sent FIN
    // before the answer (httpAllowHalfOpen is off), which would hide every other outcome.
    socket.on("connect", () => socket.write(bytes));
  });
}

/** What is wrong with an answer, if anything. */
function defects(c: Case, a: Answer): string[] {
  const found: string[] = [];
  if (a.statuses.length === 0) found.push(`no answer (${a.end} after ${Math.round(a.ms)} ms)`);
  for (const [i, status] of a.statuses.entries()) {
    const body = a.bodies[i] ?? "";
    if (status >= 500 && status !== 501) found.push(`HTTP ${status}: ${body.slice(0, 200)}`);
    if (body.length > MAX_ERROR_BODY && status >= 400) found.push(`HTTP ${status} with a ${body.length}-byte body`);
    if (status === 422 && !/chunked/i.test(c.family)) {
      try {
        const detail = (JSON.parse(body) as { detail?: unknown }).detail;
        const ok = Array.isArray(detail) && detail.length > 0 && detail.every((d) => typeof d?.type === "string" && Array.isArray(d?.loc) && typeof d?.msg === "string" && d.msg.length > 0);
        if (!ok) found.push(`422 whose detail is not tesseract-core's entries: ${body.slice(0, 200)}`);
      } catch {
        found.push(`422 whose body is not JSON: ${body.slice(0, 200)}`);
      }
    }
  }
  return found;
}

// ---- the run -------------------------------------------------------------------------------------

interface Server {
  process: ServeProcess;
  httpPort: number;
}

async function start(t: TesseractName): Promise<Server> {
  const process = await serveProcess([t, "--port", "0", "--http-port", "0", "--max-message-bytes", String(MAX_MESSAGE), "--warm-up-ms", "0"]);
  // The JSON log names the REST port.
  for (let i = 0; i < 200; i++) {
    const m = /"httpPort":(\d+)/.exec(process.stderrTail());
    if (m) return { process, httpPort: Number(m[1]) };
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${t}: no httpPort logged`);
}

const procFigure = (pid: number | undefined, what: "fds" | "rss"): number => {
  try {
    if (what === "fds") return fs.readdirSync(`/proc/${pid}/fd`).length;
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
};

async function main(): Promise<void> {
  const names: TesseractName[] = ["vectoradd", "meshstats"];
  const servers = {} as Record<TesseractName, Server>;
  for (const t of names) servers[t] = await start(t);
  const figures = (when: string) => Object.fromEntries(names.map((t) => [`${t} ${when}`, { fds: procFigure(servers[t].process.child.pid, "fds"), rssMiB: procFigure(servers[t].process.child.pid, "rss") }]));
  const before = figures("start");

  const fixed = names.flatMap(catalogue);
  const seeded = mutations(SEED);
  const started = performance.now();
  let taken = 0;
  const next = (): Case | undefined => {
    if (taken >= COUNT || (performance.now() - started) / 1000 >= SECONDS) return undefined;
    const i = taken++;
    return i < fixed.length ? fixed[i] : seeded.next().value;
  };

  const table = new Map<string, Record<string, number>>();
  const failures = new Map<string, { route: string; kind: string; count: number; caseId: string; family: string; detail: string; bytes: string }>();
  let sent = 0;
  const exits: string[] = [];
  async function lane(): Promise<void> {
    for (let c = next(); c; c = next()) {
      const server = servers[c.tesseract];
      const a = await send(server.httpPort, c.bytes);
      const found = defects(c, a);
      const child = server.process.child;
      if (child.exitCode !== null || child.signalCode !== null) {
        found.push(`the ${c.tesseract} server exited (${child.exitCode ?? child.signalCode}): ${server.process.stderrTail().slice(-600)}`);
        exits.push(c.id);
        servers[c.tesseract] = await start(c.tesseract);
      }
      sent++;
      const row = table.get(`${c.tesseract} ${c.route}`) ?? {};
      for (const s of a.statuses.length ? a.statuses : [a.end]) row[String(s)] = (row[String(s)] ?? 0) + 1;
      table.set(`${c.tesseract} ${c.route}`, row);
      for (const d of found) {
        const kind = d.replace(/\d+/g, "N").slice(0, 80);
        const key = `${c.tesseract} ${c.route}|${kind}`;
        const f = failures.get(key);
        if (f) f.count++;
        else failures.set(key, { route: `${c.tesseract} ${c.route}`, kind, count: 1, caseId: c.id, family: c.family, detail: d, bytes: c.bytes.subarray(0, 600).toString("latin1") });
      }
      if (sent % 5000 === 0) process.stderr.write(`  ${sent} cases, ${failures.size} distinct failures, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    }
  }
  await Promise.all(Array.from({ length: LANES }, lane));
  const seconds = (performance.now() - started) / 1000;

  // Still answering, and holding no more connections than at the start once the cases' are closed.
  for (const t of names) {
    const health = await send(servers[t].httpPort, raw("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    if (health.statuses[0] !== 200) failures.set(`${t} health`, { route: `${t} health`, kind: "health after the run", count: 1, caseId: "-", family: "-", detail: `${health.statuses[0] ?? health.end}`, bytes: "" });
  }
  const after = figures("end");
  for (const t of names) {
    const [fdsBefore, fdsAfter] = [before[`${t} start`].fds, after[`${t} end`].fds];
    // A socket of a case whose close the server has not seen yet may still be open: a few, not one per case.
    if (fdsAfter > fdsBefore + LANES + 4) failures.set(`${t} fds`, { route: t, kind: "file descriptors", count: 1, caseId: "-", family: "-", detail: `${fdsBefore} at the start, ${fdsAfter} at the end`, bytes: "" });
  }
  await Promise.all(names.map((t) => servers[t].process.stop()));

  const columns = [...new Set([...table.values()].flatMap((r) => Object.keys(r)))].sort();
  const rows = [...table].sort(([a], [b]) => a.localeCompare(b)).map(([route, r]) => ({ route, ...Object.fromEntries(columns.map((c) => [c, r[c] ?? 0])) }));
  console.table(rows);
  console.log(`${sent} cases in ${seconds.toFixed(1)} s, seed ${SEED}, ${LANES} lanes; servers:`, { ...before, ...after });
  const list = [...failures.values()];
  console.log(`\n${list.length} distinct failures (route | kind):`);
  for (const f of list) console.log(`\n- ${f.route} | ${f.kind} (${f.count}×)\n  case ${f.caseId}: ${f.family}\n  => ${f.detail}\n  bytes: ${JSON.stringify(f.bytes)}`);

  const dir = path.join(__dirname, "../../bench/results");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "rest-fuzz.json");
  const machine = { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, date: new Date().toISOString() };
  fs.writeFileSync(file, JSON.stringify({ machine, run: { seed: SEED, seconds, cases: sent, timeoutMs: TIMEOUT_MS, lanes: LANES, servers: { ...before, ...after }, exits }, results: rows, failures: list }, null, 2));
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
  process.exit(list.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
