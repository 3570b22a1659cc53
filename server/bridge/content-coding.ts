/**
 * Answers that come with a Content-Encoding. The bridge asks for none (Accept-Encoding: identity:
 * its answers are mostly base64 of floats, which compress poorly, from a runtime near by), but a
 * proxy in front of a runtime may compress anyway: gzip, deflate and br are decoded, up to the
 * answer's bound; another coding is refused naming it (its bytes were reported as "not UTF-8").
 */
import { Readable, type Transform } from "node:stream";
import * as zlib from "node:zlib";
import { quote } from "../../common/errors";

/** HTTP's deflate is zlib-wrapped; some servers send it raw (no zlib header: CMF 0x?8 with a header checksum). */
const zlibWrapped = (bytes: Buffer) => bytes.length >= 2 && (bytes[0] & 0x0f) === 8 && ((bytes[0] << 8) | bytes[1]) % 31 === 0;

const DECODERS: Record<string, (bytes: Buffer) => Transform> = {
  gzip: () => zlib.createGunzip(),
  "x-gzip": () => zlib.createGunzip(),
  deflate: (bytes) => (zlibWrapped(bytes) ? zlib.createInflate() : zlib.createInflateRaw()),
  br: () => zlib.createBrotliDecompress(),
};

/** What an answer failed to decode by, said after `<method> /<endpoint> on <runtime> `. */
export class ContentCodingError extends Error {}

/**
 * `bytes` decoded by `header`'s codings (applied in order, so undone in reverse), at most `maxBytes`
 * of them. Decoded a chunk at a time, each first taken by `take` (the answers' shared budget): a
 * small compressed answer may decode to the answer's bound, and several at once did so outside it.
 */
export async function decodeContent(bytes: Buffer, header: string | string[] | undefined, maxBytes: number, take: (bytes: number) => Promise<void> = async () => {}): Promise<Buffer> {
  if (header === undefined) return bytes;
  const codings = [header]
    .flat()
    .flatMap((h) => h.split(","))
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity");
  for (const coding of codings.reverse()) {
    const decoder = Object.hasOwn(DECODERS, coding) ? DECODERS[coding] : undefined;
    if (!decoder) throw new ContentCodingError(`answered with Content-Encoding ${quote(coding)}, which the bridge does not decode (it asks for none: Accept-Encoding: identity)`);
    const chunks: Buffer[] = [];
    let length = 0;
    let taking: Promise<void> | undefined;
    try {
      for await (const chunk of Readable.from([bytes]).pipe(decoder(bytes)) as AsyncIterable<Buffer>) {
        length += chunk.length;
        if (length > maxBytes) throw new ContentCodingError(`answered more than ${maxBytes} bytes once decoded (Content-Encoding ${coding}), the most this server reads of a runtime's answer`);
        await (taking = take(chunk.length));
        taking = undefined;
        chunks.push(chunk);
      }
    } catch (e) {
      // The budget's own failure (the caller gave up waiting) is no fault of the bytes.
      if (e instanceof ContentCodingError || taking) throw e;
      throw new ContentCodingError(`answered with Content-Encoding ${coding}, but its bytes do not decode: ${(e as Error).message}`);
    }
    bytes = Buffer.concat(chunks, length);
  }
  return bytes;
}
