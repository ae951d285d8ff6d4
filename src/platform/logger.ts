/** Structured logs (pino): JSON lines for machines, pretty-printed on an interactive terminal. */
import pino, { type Logger } from "pino";

export type { Logger };

export function createLogger(level: string, name = "incubator"): Logger {
  const pretty = process.stdout.isTTY && !process.env.CI;
  return pino({
    name,
    level,
    ...(pretty
      ? { transport: { target: "pino-pretty", options: { colorize: true, ignore: "pid,hostname" } } }
      : {}),
  });
}
