/**
 * The one way this server corrects grpc-js where no option or interceptor reaches (compressed-flag.ts,
 * timeout-header.ts): a method of its BaseServerInterceptingCall, wrapped once per process. Each
 * correction is tested with raw frames, so a grpc-js upgrade that moves a method fails the tests;
 * at run time the server logs that the correction is missing.
 */
const wrapped = new Map<string, boolean>();

/** Replaces the method `name` by `wrap(original)`, once; false when this grpc-js has no such method. */
export function wrapServerCallMethod<F extends (this: never, ...args: never[]) => unknown>(name: string, wrap: (original: F) => F): boolean {
  const known = wrapped.get(name);
  if (known !== undefined) return known;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const internals = require("@grpc/grpc-js/build/src/server-interceptors") as { BaseServerInterceptingCall?: { prototype: Record<string, unknown> } };
  const proto = internals.BaseServerInterceptingCall?.prototype;
  const original = proto?.[name];
  const found = typeof original === "function";
  if (found) proto![name] = wrap(original as F);
  wrapped.set(name, found);
  return found;
}
