/** The runner's own log: one line per event on stderr, with a time, so an operator can follow it. */
export type Level = "info" | "warn" | "error";

export function log(level: Level, message: string): void {
  process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${message}\n`);
}

/** The message of anything thrown, on one line. */
export function reason(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.replace(/\s+/g, " ").trim();
}
