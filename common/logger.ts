import { pino, type Logger } from "pino";

export type { Logger };

/**
 * `base` adds fields to every line (the API says so on every line when auth is off).
 *
 * Lines go to stdout asynchronously (pino.destination with sync off): the event loop hands
 * each line over and goes on, the lines that arrive while a write is under way go out
 * together in the next one, and pino flushes what is left when the process exits. The
 * default, a synchronous write(2) per line, was about 3 % of the API's main thread under
 * B1's load (one access line per request). A process killed with SIGKILL can lose the
 * lines of the write under way.
 */
export function createLogger(name: string, level = "info", base: Record<string, unknown> = {}): Logger {
  return pino({ name, level, base: { service: name, ...base } }, pino.destination({ dest: 1, sync: false }));
}
