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
    // Written into one buffer of the size gzip's trailer states (mod 2^32), where that is within the
    // limit: the chunks joined at the end held the message twice (16 calls of 60 MiB peaked at 958
    // MiB under a budget of 512; now 665). Several members, whose last trailer states only that
    // member's size, fall back to joining chunks.
    let whole = encoding === "gzip" ? wholeBuffer(body, maxMessageBytes) : undefined;
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
      if (whole && length + chunk.length > whole.length) {
        parts.push(whole.subarray(0, length));
        whole = undefined;
      }
      if (whole) chunk.copy(whole, length);
      else parts.push(chunk);
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
      resolve(whole ? whole.subarray(0, length) : Buffer.concat(parts, length));
    });
    inflater.end(body);
  });
}

/** A buffer of the inflated size a gzip member's trailer states (ISIZE), where it is within `maxMessageBytes`. */
function wholeBuffer(body: Buffer, maxMessageBytes: number): Buffer | undefined {
  if (body.length < 18) return undefined; // a header and a trailer at least
  const stated = body.readUInt32LE(body.length - 4);
  return stated > 0 && stated <= maxMessageBytes ? Buffer.allocUnsafe(stated) : undefined;
}

/** Bytes counted now (tests). */
export function heldDecompressedBytes(): number {
  return held;
}
