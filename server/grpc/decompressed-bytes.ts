/**
 * Compressed request messages, inflated within a budget. The held-bytes budget (stalled-streams.ts)
 * counts what arrives on the wire, and a 61 KB gzip message inflates to 60 MiB: grpc-js inflates
 * every message whole, so 16 such calls, 1 MB sent, held 1.3 GB (24: 2 GB). Here the bytes of
 * inflated messages count server-wide, as they are produced, until their call's stream closes; a
 * message that would take them past HELD_MESSAGES_PER_LIMIT × the message limit (what unfinished
 * messages may hold on the wire) ends its call with RESOURCE_EXHAUSTED. Compression then costs the
 * server no more than the same bytes sent plain.
 */
import * as zlib from "node:zlib";
import { status } from "@grpc/grpc-js";
import { HELD_MESSAGES_PER_LIMIT } from "./stalled-streams";

/** Bytes of inflated request messages whose calls are still open, all servers of the process together. */
let held = 0;

/** What a call's stream gives for the release. */
interface ClosingStream {
  once(event: "close", listener: () => void): unknown;
  readonly closed?: boolean;
}

/** Inflates a gzip or deflate message body: at most `maxMessageBytes` for it, and within the server-wide budget. */
export function inflateWithinBudget(body: Buffer, encoding: "gzip" | "deflate", maxMessageBytes: number, stream: ClosingStream): Promise<Buffer> {
  const budget = HELD_MESSAGES_PER_LIMIT * maxMessageBytes;
  return new Promise((resolve, reject) => {
    const inflater = encoding === "gzip" ? zlib.createGunzip() : zlib.createInflate();
    const parts: Buffer[] = [];
    let length = 0;
    let settled = false;
    const release = () => {
      held -= length;
      length = 0;
    };
    const refuse = (details: string) => {
      if (settled) return;
      settled = true;
      release();
      inflater.destroy();
      reject({ code: status.RESOURCE_EXHAUSTED, details });
    };
    inflater.on("data", (chunk: Buffer) => {
      if (settled) return;
      parts.push(chunk);
      length += chunk.length;
      held += chunk.length;
      if (length > maxMessageBytes) refuse(`a request message decompresses to more than the ${maxMessageBytes}-byte message limit (--max-message-bytes)`);
      else if (held > budget) refuse(`compressed requests in flight decompress to more than the server holds for them (${budget} bytes: ${HELD_MESSAGES_PER_LIMIT} × --max-message-bytes); try again later`);
    });
    inflater.on("error", () => {
      if (settled) return;
      settled = true;
      release();
      reject({ code: status.INTERNAL, details: "Failed to decompress message" });
    });
    inflater.on("end", () => {
      if (settled) return;
      settled = true;
      // Its bytes stay counted while the call can still hold them.
      if (stream.closed) release();
      else stream.once("close", release);
      resolve(Buffer.concat(parts, length));
    });
    inflater.end(body);
  });
}

/** Bytes counted now (tests). */
export function heldDecompressedBytes(): number {
  return held;
}
