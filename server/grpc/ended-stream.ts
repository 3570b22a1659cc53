/**
 * grpc-js ends a call's HTTP/2 stream when its deadline passes (sendStatus: `stream.end()`, the
 * trailers sent once what was written is flushed), while a message the handler wrote just before can
 * still be on its way through the interceptors. Written after the end, it fails with
 * ERR_STREAM_WRITE_AFTER_END, and the trailers are never sent: a JacobianRows call under a busy worker
 * pool then had no status at all (1 to 3 streams in 64 with 400 ms deadlines). Wrapped in
 * BaseServerInterceptingCall's sendMessage, a message for a stream already ended is dropped, as
 * grpc-js drops one for a call already cancelled. test/framing.test.ts calls the wrapped method, so a
 * grpc-js upgrade that moves it fails the tests.
 */
import { wrapServerCallMethod } from "./call-internals";

type Call = { stream?: { writableEnded?: boolean; destroyed?: boolean } };
type SendMessage = (this: Call, message: unknown, callback?: () => void) => void;

/** Installs the check once per process; false when this grpc-js has no such method to wrap. */
export function dropMessagesAfterEnd(): boolean {
  return wrapServerCallMethod<SendMessage>("sendMessage", (original) =>
    function (message, callback) {
      if (this.stream?.writableEnded || this.stream?.destroyed) return callback?.();
      return original.call(this, message, callback);
    },
  );
}
