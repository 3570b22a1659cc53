/** Structured logs: JSON lines on stderr (stdout is kept for the CLI's own output). */
import pino from "pino";

export type Logger = pino.Logger;

export function createLogger(level = process.env.TESSERACT_GRPC_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { service: "tesseract-grpc" } }, pino.destination({ fd: 2, sync: true }));
}

/** For tests and embedders that want silence. */
export const silentLogger: Logger = pino({ level: "silent" });
