/** Client TLS: channel credentials from PEM contents, checked part by part. */
import * as grpc from "@grpc/grpc-js";
import { checkPemKeyPair, pemCertificates } from "../common/pem";

/** TLS for a client, as PEM contents; every field optional. */
export interface ClientTls {
  /** CA certificate(s) that the server's certificate must chain to; unset: the system's roots. */
  ca?: Buffer;
  /** Mutual TLS: the client's certificate (chain), given with `key`. */
  cert?: Buffer;
  /** Mutual TLS: the private key of `cert`. */
  key?: Buffer;
}

/** How errors name the three parts: option names by default, the CLI passes its flags and paths. */
export type ClientTlsLabels = Record<keyof ClientTls, string>;

const OPTION_LABELS: ClientTlsLabels = { ca: "tls.ca", cert: "tls.cert", key: "tls.key" };

/**
 * TLS channel credentials (`grpc.credentials.createSsl`), after checking that `ca` and `cert` hold PEM
 * certificates and `key` a PEM private key matching `cert`; errors name the bad part.
 *
 *   new TesseractClient(address, types, { credentials: tlsCredentials({ ca: fs.readFileSync("ca.crt") }) })
 */
export function tlsCredentials(tls: ClientTls = {}, labels: ClientTlsLabels = OPTION_LABELS): grpc.ChannelCredentials {
  if (typeof tls !== "object" || tls === null || Array.isArray(tls)) throw new TypeError(`tlsCredentials takes { ca?, cert?, key? } of PEM contents (Buffers); it was given ${tls === null ? "null" : Array.isArray(tls) ? "an array" : typeof tls}`);
  if (!tls.cert !== !tls.key) throw new Error(`${tls.cert ? labels.key : labels.cert} is missing: a client certificate needs both ${labels.cert} and ${labels.key}`);
  if (tls.ca) pemCertificates(tls.ca, labels.ca);
  if (tls.cert && tls.key) checkPemKeyPair(tls.cert, tls.key, labels.cert, labels.key);
  try {
    return grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
  } catch (e) {
    throw new Error(`TLS credentials could not be created: ${e instanceof Error ? e.message : String(e)}`);
  }
}
