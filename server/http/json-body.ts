/**
 * JSON request bodies read as FastAPI reads them: strict UTF-8, then JSON.parse, then Python's
 * literals (NaN, Infinity) where JSON.parse refuses. A body of OFF_LOOP_BYTES or more is read in a
 * worker thread: in the event loop, 60 MB held every other call, health checks included, 0.3 s
 * (arrays in base64, as tesseract-core's Python client sends them) to 1.2 s (arrays as lists of
 * numbers); its value comes back by structured clone, 10–30 ms of the loop (bench/json-body.ts).
 */
import * as path from "node:path";
import { Piscina } from "piscina";
import { parsePythonLiterals } from "../../common/python-json";
import { strictUtf8, utf8Failure } from "../../common/utf8";

/** A body read: its value, or why it is no JSON (both as the caller is told). */
export type ReadBody = { value: unknown } | { invalidUtf8: string } | { syntaxError: string };

/** Bodies this big or bigger are read off the event loop; a smaller one costs less than the worker's round trip (~1 ms). */
export const OFF_LOOP_BYTES = 1 << 20;

/** How long the reading thread is kept once no body needs it (it is started again on the next big body). */
const IDLE_MS = 30_000;

/** Reads `bytes` in the calling thread. */
export function readJsonBody(bytes: Uint8Array): ReadBody {
  const text = strictUtf8(bytes);
  if (text === undefined) return { invalidUtf8: utf8Failure(bytes) };
  try {
    return { value: JSON.parse(text) };
  } catch (refusal) {
    try {
      return { value: parsePythonLiterals(text, refusal) };
    } catch (e) {
      return { syntaxError: (e as Error).message };
    }
  }
}

/** Reads bodies, the big ones in one worker thread started on first need; `close` ends it. */
export class JsonBodyReader {
  private pool?: Piscina;

  read(bytes: Buffer): Promise<ReadBody> {
    if (bytes.length < OFF_LOOP_BYTES) return Promise.resolve(readJsonBody(bytes));
    this.pool ??= new Piscina({ filename: path.join(__dirname, "json-body-worker.js"), minThreads: 0, maxThreads: 1, idleTimeout: IDLE_MS });
    // The body's own memory is moved to the thread, not copied, where it is the whole of it.
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? new Uint8Array(bytes.buffer) : new Uint8Array(bytes);
    return this.pool.run(owned, { transferList: [owned.buffer as ArrayBuffer] }) as Promise<ReadBody>;
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}
