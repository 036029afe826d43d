import { pino, type Logger } from "pino";

export type { Logger };

/** `base` adds fields to every line (the API says so on every line when auth is off). */
export function createLogger(name: string, level = "info", base: Record<string, unknown> = {}): Logger {
  return pino({ name, level, base: { service: name, ...base } });
}
