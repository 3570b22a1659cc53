/**
 * The gRPC protocol: a message's compressed flag is 1 only under a `grpc-encoding` that names a
 * compression, and 0 otherwise ("If the Message-Encoding header is omitted then the Compressed-Flag
 * must be 0"). grpc-js 1.14 decodes a flagged message without an encoding as if it were not
 * compressed, and any flag byte other than 1 as 0, so such bytes are answered as if well formed.
 *
 * No option or interceptor sees the flag: it is read and dropped in BaseServerInterceptingCall's
 * decompressMessage before deserialization. The fix is the one upstream would make, at that spot:
 * decompressMessage is handed "identity" exactly when no compression applies, so a flag byte that
 * is not 0 there is refused. We answer INVALID_ARGUMENT with a message (the caller's mistake)
 * rather than the INTERNAL the spec suggests. A flag other than 0 or 1 under an encoding is refused
 * as such, and bytes that do not decompress as the encoding says (INTERNAL from grpc-js) are the
 * caller's too: INVALID_ARGUMENT. test/framing.test.ts sends such frames, so a grpc-js upgrade that
 * moves the method fails the tests instead of silently dropping the check. gzip and deflate
 * messages are inflated here too, within the server's budget for them (decompressed-bytes.ts); any
 * other encoding is UNIMPLEMENTED, quoted short.
 */
import { status } from "@grpc/grpc-js";
import { quote } from "../../common/errors";
import { wrapServerCallMethod } from "./call-internals";
import { inflateWithinBudget } from "./decompressed-bytes";

/** The compressions a message may be sent in (grpc-js's). */
const DECODED = new Set(["identity", "gzip", "deflate"]);

/** UNIMPLEMENTED, as the gRPC spec says, with the encoding quoted short: grpc-js echoed it whole (50 000 characters made a 50 KB grpc-message). */
export function unsupportedEncodingDetails(encoding: string): string {
  return `a message is compressed with grpc-encoding ${quote(encoding)}, which this server does not decode: send it uncompressed, gzip or deflate`;
}

export const COMPRESSED_FLAG_DETAILS = "a message has its compressed flag set, but the call declares no compression (grpc-encoding); send the flag as 0 or declare the encoding";

type Decompress = (this: { incomingEncoding?: string; maxReceiveMessageSize?: number; stream?: ClosingStream }, message: Buffer, encoding: string) => Promise<Buffer>;
type ClosingStream = Parameters<typeof inflateWithinBudget>[3];

/** Installs the check once per process; false when this grpc-js has no such method to wrap. */
export function refuseCompressedFlagWithoutEncoding(): boolean {
  return wrapServerCallMethod<Decompress>("decompressMessage", (original) =>
    function (message, encoding) {
      if (encoding === "identity" && message.length > 0 && message[0] !== 0) {
        const declared = this.incomingEncoding;
        const details = declared && declared !== "identity" ? `a message has the compressed flag ${message[0]}; expected 0 or 1` : COMPRESSED_FLAG_DETAILS;
        return Promise.reject({ code: status.INVALID_ARGUMENT, details });
      }
      if (!DECODED.has(encoding)) return Promise.reject({ code: status.UNIMPLEMENTED, details: unsupportedEncodingDetails(encoding) });
      // gzip and deflate inflate within the server's budget (decompressed-bytes.ts), grpc-js's limit per message kept.
      const limit = this.maxReceiveMessageSize !== undefined && this.maxReceiveMessageSize >= 0 ? this.maxReceiveMessageSize : Infinity;
      const inflated = (encoding === "gzip" || encoding === "deflate") && this.stream ? inflateWithinBudget(message.subarray(5), encoding, limit, this.stream) : original.call(this, message, encoding);
      return Promise.resolve(inflated).catch((e: { code?: number; details?: string }) =>
        Promise.reject(e?.code === status.INTERNAL ? { code: status.INVALID_ARGUMENT, details: `a message does not decompress as its grpc-encoding "${encoding}" says` } : e),
      );
    },
  );
}
