/** Server TLS: PEM checks that name the bad file, and the grpc-js credentials. */
import * as grpc from "@grpc/grpc-js";
import { checkPemKeyPair, pemCertificates } from "../../common/pem";

/** TLS for the server, as PEM contents. */
export interface ServerTls {
  /** The server's certificate (chain), PEM. */
  cert: Buffer;
  /** The private key of `cert`, PEM. */
  key: Buffer;
  /** Mutual TLS: CA certificate(s), PEM; every client must present a certificate signed by one of them. */
  clientCa?: Buffer;
}

/** How errors name the three parts: option names by default, the CLI passes its flags and paths. */
export type TlsLabels = Record<keyof ServerTls, string>;

const OPTION_LABELS: TlsLabels = { cert: "tls.cert", key: "tls.key", clientCa: "tls.clientCa" };

/**
 * Checks that `cert` and `clientCa` hold PEM certificates and `key` a PEM private key matching the
 * first certificate of `cert` (grpc-js would take an invalid client CA silently and refuse every client).
 */
export function checkServerTls(tls: ServerTls, labels: TlsLabels = OPTION_LABELS): void {
  checkPemKeyPair(tls.cert, tls.key, labels.cert, labels.key);
  if (tls.clientCa) pemCertificates(tls.clientCa, labels.clientCa);
}

/** TLS (mutual when `clientCa` is set) credentials after checkServerTls; insecure without `tls`. */
export function serverCredentials(tls: ServerTls | undefined, labels?: TlsLabels): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  checkServerTls(tls, labels);
  try {
    return grpc.ServerCredentials.createSsl(tls.clientCa ?? null, [{ private_key: tls.key, cert_chain: tls.cert }], !!tls.clientCa);
  } catch (e) {
    throw new Error(`TLS credentials could not be created: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** "off", "on" or "mutual", for logs. */
export function tlsMode(tls: ServerTls | undefined): "off" | "on" | "mutual" {
  return !tls ? "off" : tls.clientCa ? "mutual" : "on";
}
