/**
 * Answers that come with a Content-Encoding. The bridge asks for none (Accept-Encoding: identity:
 * its answers are mostly base64 of floats, which compress poorly, from a runtime near by), but a
 * proxy in front of a runtime may compress anyway: gzip, deflate and br are decoded, up to the
 * answer's bound; another coding is refused naming it (its bytes were reported as "not UTF-8").
 */
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { quote } from "../../common/errors";

type Decode = (bytes: Buffer, options: zlib.ZlibOptions & zlib.BrotliOptions) => Promise<Buffer>;

const gunzip: Decode = promisify(zlib.gunzip);
const inflate: Decode = promisify(zlib.inflate);
const inflateRaw: Decode = promisify(zlib.inflateRaw);
const DECODERS: Record<string, Decode> = {
  gzip: gunzip,
  "x-gzip": gunzip,
  // HTTP's deflate is zlib-wrapped; some servers send it raw.
  deflate: (bytes, options) => inflate(bytes, options).catch(() => inflateRaw(bytes, options)),
  br: promisify(zlib.brotliDecompress),
};

/** What an answer failed to decode by, said after `<method> /<endpoint> on <runtime> `. */
export class ContentCodingError extends Error {}

/** `bytes` decoded by `header`'s codings (applied in order, so undone in reverse), at most `maxBytes` of them. */
export async function decodeContent(bytes: Buffer, header: string | string[] | undefined, maxBytes: number): Promise<Buffer> {
  const codings = [header ?? []]
    .flat()
    .flatMap((h) => h.split(","))
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  for (const coding of codings.reverse()) {
    const decode = Object.hasOwn(DECODERS, coding) ? DECODERS[coding] : undefined;
    if (!decode) throw new ContentCodingError(`answered with Content-Encoding ${quote(coding)}, which the bridge does not decode (it asks for none: Accept-Encoding: identity)`);
    try {
      bytes = await decode(bytes, { maxOutputLength: maxBytes });
    } catch (e) {
      if ((e as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") throw new ContentCodingError(`answered more than ${maxBytes} bytes once decoded (Content-Encoding ${coding}), the most this server reads of a runtime's answer`);
      throw new ContentCodingError(`answered with Content-Encoding ${coding}, but its bytes do not decode: ${(e as Error).message}`);
    }
  }
  return bytes;
}
