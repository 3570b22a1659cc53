/**
 * A `grpc-timeout` header that is not a timeout ("abcZ") is the caller's mistake, but grpc-js 1.14
 * answers it INTERNAL ("Invalid grpc-timeout value"). Its check is in BaseServerInterceptingCall's
 * handleTimeoutHeader, before any interceptor; wrapped there, the values gRPC's spec allows are accepted
 * and the rest answered INVALID_ARGUMENT saying what the header must be (grpc-js's own pattern is not
 * anchored: it read "1e3m" as 3 ms, "100000000S" as 0 s, "-5S" as 5 s). A timeout longer
 * than Node's timers can run (2^31 - 1 ms) is taken as no deadline rather than one already passed.
 * test/framing.test.ts sends such headers, so a grpc-js upgrade that moves the method fails the tests.
 */
import { status } from "@grpc/grpc-js";
import { quote } from "../../common/errors";
import { MAX_TIMER_MS } from "../../common/transport-defaults";
import { wrapServerCallMethod } from "./call-internals";

/** The header as gRPC's spec writes it: 1 to 8 digits and a unit, nothing else. */
const TIMEOUT_PATTERN = /^(\d{1,8})\s*([HMSmun])$/;
/** Milliseconds per unit, as grpc-js reads them. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

type Call = { sendStatus(s: { code: number; details: string; metadata: null }): void };
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
      const details = `grpc-timeout is ${quote(String(value))}: expected 1 to 8 digits and a unit (H, M, S, m, u or n), e.g. 100m`;
      // After the constructor, as grpc-js sends its own.
      process.nextTick(() => this.sendStatus({ code: status.INVALID_ARGUMENT, details, metadata: null }));
    },
  );
}
