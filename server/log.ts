/**
 * Structured logs: JSON lines on stderr (stdout is kept for the CLI's own output).
 *
 * Written asynchronously (libuv's thread pool does the writes) from a buffer of at most
 * LOG_BUFFER_BYTES: a reader of stderr that falls behind or stops (a parent process that never
 * reads its child's pipe, a stalled log shipper) costs log lines, never calls. Written
 * synchronously, each line waited for the pipe: once its 64 KiB were full, the event loop stopped
 * and every call hung; and each line cost the event loop a system call. Before exiting, the CLI
 * waits a moment for the lines still waiting (`logsWritten`).
 */
import pino from "pino";
import SonicBoom from "sonic-boom";

export type Logger = pino.Logger;

/** Lines waiting for stderr beyond this are dropped (and counted, and said once it reads again). */
export const LOG_BUFFER_BYTES = 8 * 2 ** 20;

export function createLogger(level = process.env.TESSERACT_GRPC_LOG_LEVEL ?? "info", bufferBytes = LOG_BUFFER_BYTES): Logger {
  const stderr = new StderrLines(bufferBytes);
  const logger = pino({ level, base: { service: "tesseract-grpc" } }, stderr);
  stderr.onResumedAfterDrops = (dropped) => logger.warn({ dropped_lines: dropped }, `stderr was not read for a while: ${dropped} log ${dropped === 1 ? "line was" : "lines were"} dropped (more than ${bufferBytes} bytes waited)`);
  destinations.set(logger, stderr);
  return logger;
}

const destinations = new WeakMap<Logger, StderrLines>();

/**
 * Resolves once the lines `logger` (of createLogger) was given are on stderr, or after `ms`: before
 * the process exits (it would leave them unwritten), without waiting for good on a stderr nobody reads.
 */
export function logsWritten(logger: Logger, ms: number): Promise<void> {
  return destinations.get(logger)?.written(ms) ?? Promise.resolve();
}

/** For tests and embedders that want silence. */
export const silentLogger: Logger = pino({ level: "silent" });

/** pino's destination: lines to fd 2 through a bounded asynchronous buffer. */
class StderrLines {
  private readonly stream: SonicBoom;
  /** Lines wait to be written. */
  private waiting = false;
  private dropped = 0;
  /** stderr failed (EPIPE: its reader is gone): nothing more is written. */
  private broken = false;
  onResumedAfterDrops?: (dropped: number) => void;

  constructor(bufferBytes: number) {
    this.stream = new SonicBoom({ fd: 2, sync: false, maxLength: bufferBytes });
    // Said once all that waited is written: there is room for the line that says it.
    this.stream.on("drain", () => {
      this.waiting = false;
      if (this.dropped === 0) return;
      const dropped = this.dropped;
      this.dropped = 0;
      this.onResumedAfterDrops?.(dropped);
    });
    this.stream.on("drop", () => this.dropped++);
    // An unhandled 'error' would end the process: a closed stderr must not end the server.
    this.stream.on("error", () => (this.broken = true));
  }

  write(line: string): void {
    if (this.broken) return;
    this.waiting = true;
    this.stream.write(line);
  }

  written(ms: number): Promise<void> {
    if (!this.waiting || this.broken) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stream.off("drain", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stream.on("drain", done);
    });
  }
}
