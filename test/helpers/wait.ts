/**
 * Waiting in tests. Runner reports, alarms and streams reach the objects asynchronously, so
 * tests poll for an outcome with a deadline instead of sleeping a fixed time.
 */
import { expect } from "vitest";

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `read` every `intervalMs` until `ok` holds, failing with `what` and the last value after `timeoutMs`. */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 5000, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await read();
  while (!ok(v) && Date.now() < deadline) {
    await sleep(intervalMs);
    v = await read();
  }
  const seen = JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x))?.slice(0, 1500);
  expect(ok(v), `${what}; last seen: ${seen}`).toBe(true);
  return v;
}

/** `p`, or a failure naming `what` if it takes longer than `ms` (the SDK's wait helpers wait forever). */
export function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms}ms`)), ms)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
