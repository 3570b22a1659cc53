/**
 * What the CLI prints besides results: a failure with the next step to take (a server to start, a
 * flag to drop, how to write an int32 array), and a gradient call's evaluation stats.
 */
import { Code, isTesseractError, listed, printable } from "../common/errors";
import type { EvaluationStats } from "../generated/tesseract/v1/tesseract";
import { numpyDtype, withNumpyDtypes } from "../common/numpy-arrays";
import { DataType } from "../common/tensor-codec";
import { urlAddressHint } from "./address";
import { CONNECTION_FAILURE, connectionProblem, isTesseractClientError, lostConnectionHint } from "./errors";
import { plural } from "../common/plural";

/** grpc-js's connection failures (errors.ts, connectionProblem), each with what the user can do about it. */
const UNAVAILABLE_RULES = {
  refused: (address: string) => `no server at ${address} (connection refused) — start one with \`tesseract-grpc serve meshstats\` (or your own Tesseract), or point --address at a running one`,
  unresolved: (address: string) => `cannot resolve the host of ${address} — ${urlAddressHint(address, "--tls") ?? "check --address (HOST:PORT)"}`,
  "not TLS": (address: string) => `${address} does not answer TLS — leave out --tls and the --tls-* flags for a plaintext server`,
  untrusted: (address: string) => `${address}'s certificate is not trusted — name the CA that signed it with --tls-ca (and connect by a host name the certificate names)`,
  "certificate required": (address: string) => `${address} requires a client certificate (mutual TLS) — pass --tls-cert and --tls-key, a certificate signed by a CA the server trusts (its --tls-client-ca)`,
  "certificate refused": (address: string) => `${address} refused the client certificate — pass one (--tls-cert, --tls-key) signed by a CA the server trusts (its --tls-client-ca)`,
  closed: (address: string) => `${address} closed the connection before gRPC began — a TLS server needs --tls, with --tls-ca naming the CA that signed its certificate (under mutual TLS, with --tls-cert and --tls-key, a certificate the server trusts); a plaintext server needs no --tls`,
  "not gRPC": (address: string) => `${address} is no gRPC server (it answered HTTP/1) — point --address at the gRPC port, not the REST API's (--http-port)`,
};

/** `int32` for "DATA_TYPE_INT32 or …", undefined for a name that is no datatype. */
function dtypeOf(name: string): string | undefined {
  const datatype = DataType[name as keyof typeof DataType];
  return datatype === undefined ? undefined : numpyDtype(datatype);
}

/**
 * The line printed for a failed command (after `tesseract-grpc <command>: `), its control
 * characters escaped: a server's message (a runtime's error text, say) must not drive the terminal.
 */
export function explainError(e: unknown, address: string): string {
  return printable(explanation(e, address));
}

function explanation(e: unknown, address: string): string {
  // The payload's own checks, before any call (json-form.ts), carry a code like the server's.
  if (isTesseractError(e)) return `${Code[e.code]}: ${e.message}`;
  if (!isTesseractClientError(e)) return e instanceof Error ? e.message : String(e);
  const text = e.details;
  const problem = connectionProblem(e.code, text);
  // The server was there: asking whether one listens (with TLS or not) misled.
  if (problem === "lost") return `${e.codeName}: ${text} — ${lostConnectionHint(address, e.call?.progress)}`;
  if (e.codeName === "UNAVAILABLE") {
    if (problem) return `UNAVAILABLE: ${UNAVAILABLE_RULES[problem](address)}`;
    // The server answered UNAVAILABLE itself (a tesseract-core runtime it bridges is down, say): its message says why.
    if (!CONNECTION_FAILURE.test(text)) return `UNAVAILABLE: ${text}`;
    return `UNAVAILABLE: ${text} — is a tesseract-grpc server listening at ${address}, with TLS if and only if you asked for it?`;
  }
  // grpc-js's own words for a client deadline list its internals (name resolution, LB pick, ...).
  if (e.codeName === "DEADLINE_EXCEEDED" && /^Deadline exceeded after/.test(text)) return `DEADLINE_EXCEEDED: no answer within the deadline (--deadline) — allow more time, or ask for less work`;
  if (e.codeName === "UNAUTHENTICATED") return `UNAUTHENTICATED: ${text} — pass it with --token (or TESSERACT_GRPC_TOKEN)`;
  const wrongType = /has datatype (DATA_TYPE_\w+), expected (DATA_TYPE_\w+)/.exec(text);
  const [given, dtype] = wrongType ? [dtypeOf(wrongType[1]), dtypeOf(wrongType[2])] : [];
  const shown = withNumpyDtypes(text);
  if (dtype === "float64" && given) return `${e.codeName}: ${shown} — write it as a nested list or a number (float64), or with {"dtype": "float64"} in place of "${given}"`;
  if (dtype) return `${e.codeName}: ${shown} — a nested list or a number is float64; write it as {"dtype": "${dtype}", "data": ...} with the same list or number (and "shape" if the nesting does not give it)`;
  return `${e.codeName}: ${shown}`;
}

/** `18 apply calls in 0.0123 s`, then any other stats the server set (adjusted steps, column groups, ...). */
export function statsLine(stats: EvaluationStats): string {
  const parts = [`${plural(Number(stats.apply_calls), "apply call")} in ${stats.wall_seconds.toPrecision(3)} s`];
  if (stats.adjusted_steps.length) parts.push(`adjusted steps: ${listed(stats.adjusted_steps, 5)}`);
  // Dense, column_groups is n and says nothing new; grouped, it is what the structure saved.
  const source = stats.sparsity_source;
  if (source) parts.push(/dense/.test(source) ? `sparsity: ${source}` : `${plural(stats.column_groups, "column group")} (sparsity: ${source})`);
  for (const [key, value] of Object.entries(stats)) {
    if (["apply_calls", "wall_seconds", "adjusted_steps", "column_groups", "sparsity_source"].includes(key)) continue;
    if (value === undefined || value === 0 || value === "" || (Array.isArray(value) && value.length === 0)) continue;
    parts.push(`${key} ${JSON.stringify(value)}`);
  }
  return `stats: ${parts.join("; ")}`;
}
