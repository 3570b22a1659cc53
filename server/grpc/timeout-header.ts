/**
 * A `grpc-timeout` header that is not a timeout ("abcZ") is the caller's mistake, but grpc-js 1.14
 * answers it INTERNAL ("Invalid grpc-timeout value"). Its check is in BaseServerInterceptingCall's
 * handleTimeoutHeader, before any interceptor; wrapped there, the same values are accepted (grpc-js's
 * own pattern) and the rest answered INVALID_ARGUMENT saying what the header must be.
 * test/framing.test.ts sends such headers, so a grpc-js upgrade that moves the method fails the tests.
 */
import { status } from "@grpc/grpc-js";
import { quote } from "../../common/errors";
import { wrapServerCallMethod } from "./call-internals";

/** grpc-js's own reading of the header (1 to 8 digits and a unit). */
const TIMEOUT_PATTERN = /(\d{1,8})\s*([HMSmun])/;

type Call = { sendStatus(s: { code: number; details: string; metadata: null }): void };
type HandleTimeout = (this: Call, value: unknown) => void;

/** Installs the check once per process; false when this grpc-js has no such method to wrap. */
export function refuseMalformedTimeouts(): boolean {
  return wrapServerCallMethod<HandleTimeout>("handleTimeoutHeader", (original) =>
    function (value) {
      if (TIMEOUT_PATTERN.test(String(value))) return original.call(this, value);
      const details = `grpc-timeout is ${quote(String(value))}: expected 1 to 8 digits and a unit (H, M, S, m, u or n), e.g. 100m`;
      // After the constructor, as grpc-js sends its own.
      process.nextTick(() => this.sendStatus({ code: status.INVALID_ARGUMENT, details, metadata: null }));
    },
  );
}
