/**
 * grpc-js passes an IP address target (127.0.0.1:50051) to TLS as the server name, and Node warns
 * about it (DEP0123; grpc/grpc-node#1919). Harmless — the certificate is still checked against the
 * IP — but noise on stderr wherever this project dials TLS itself (the CLI's client commands, the
 * server's apply replicas): there that one warning is dropped. The SDK leaves an app's process alone.
 */
let installed = false;

export function dropIpServerNameWarning(): void {
  if (installed) return;
  installed = true;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]) {
    if (rest[0] === "DEP0123" || rest[1] === "DEP0123" || (rest[0] as { code?: string } | undefined)?.code === "DEP0123") return;
    return (emitWarning as (...args: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
}
