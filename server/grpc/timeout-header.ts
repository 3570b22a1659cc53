/**
 * A `grpc-timeout` header that is not a timeout ("abcZ") is the caller's mistake, but grpc-js 1.14
 * answers it INTERNAL ("Invalid grpc-timeout value"). Its check is in BaseServerInterceptingCall's
 * handleTimeoutHeader, before any interceptor; wrapped there, the values gRPC's spec allows are accepted
 * and the rest answered INVALID_ARGUMENT saying what the header must be (grpc-js's own pattern is not
 * anchored: it read "1e3m" as 3 ms, "100000000S" as 0 s, "-5S" as 5 s). A timeout longer
 * than Node's timers can run (2^31 - 1 ms) is taken as no deadline rather than one already passed.
 * test/framing.test.ts sends such headers, so a grpc-js upgrade that moves the method fails the tests.
 */
import type * as http2 from "node:http2";
import { status } from "@grpc/grpc-js";
import { quote } from "../../common/errors";
import { MAX_TIMER_MS } from "../../common/transport-defaults";
import { wrapServerCallMethod } from "./call-internals";

/** The header as gRPC's spec writes it: 1 to 8 digits and a unit, nothing else. */
const TIMEOUT_PATTERN = /^(\d{1,8})\s*([HMSmun])$/;
/** Milliseconds per unit, as grpc-js reads them. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

type Call = { sendStatus(s: { code: number; details: string; metadata: null }): void };

/**
 * A value with a character outside printable ASCII ("¹00m") is dropped from grpc-js's metadata as no
 * legal header, and the call ran without a deadline. Before grpc-js reads the headers, such a value
 * is written as MARKED + its percent-encoding (legal), which the check below refuses, quoting it.
 */
const MARKED = "not-ascii:";

/** Rewrites a grpc-timeout header of characters that are not printable ASCII, before grpc-js reads the headers (a session watcher: http2-sessions.ts). */
export function keepIllegalTimeouts(session: http2.ServerHttp2Session): void {
  session.prependListener("stream", (_stream, headers) => {
    const value = headers["grpc-timeout"];
    if (typeof value === "string" && /[^\x20-\x7e]/.test(value)) headers["grpc-timeout"] = MARKED + encodeURIComponent(value);
  });
}
type HandleTimeout = (this: Call, value: unknown) => void;

/** Installs the check once per process; false when this grpc-js has no such method to wrap. */
export function refuseMalformedTimeouts(): boolean {
  return wrapServerCallMethod<HandleTimeout>("handleTimeoutHeader", (original) =>
    function (value) {
      const match = TIMEOUT_PATTERN.exec(String(value));
      // Longer than a timer can run, grpc-js's timeout wrapped round (|0) or fired at once: a deadline
      // weeks away was DEADLINE_EXCEEDED in milliseconds. It is no deadline here.
      if (match && Number(match[1]) * UNIT_MS[match[2]] > MAX_TIMER_MS) return;
      if (match) return original.call(this, value);
      const text = String(value);
      const sent = text.startsWith(MARKED) ? decodedOr(text.slice(MARKED.length), text) : text;
      const details = `grpc-timeout is ${quote(sent)}: expected 1 to 8 digits and a unit (H, M, S, m, u or n), e.g. 100m`;
      // After the constructor, as grpc-js sends its own.
      process.nextTick(() => this.sendStatus({ code: status.INVALID_ARGUMENT, details, metadata: null }));
    },
  );
}

/** A caller may send the mark itself, followed by anything: what does not decode is quoted as sent. */
function decodedOr(encoded: string, sent: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return sent;
  }
}
