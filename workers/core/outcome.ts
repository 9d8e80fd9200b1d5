/**
 * Errors across Durable Object RPC. An exception thrown in an object reaches the caller as a
 * plain Error: its ConnectError code is lost. Object methods that refuse a request return an
 * Outcome instead, and the Worker turns a refusal back into the ConnectError it was.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export type Outcome<T> = { ok: true; value: T } | { ok: false; code: Code; message: string };

/** Runs `fn`, returning its ConnectError as a refusal; any other error propagates. */
export async function attempt<T>(fn: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (err instanceof ConnectError) return { ok: false, code: err.code, message: err.rawMessage };
    throw err;
  }
}

/** The value of an outcome, or its refusal thrown as the ConnectError it was. */
export function unwrap<T>(outcome: Outcome<T>): T {
  if (!outcome.ok) throw new ConnectError(outcome.message, outcome.code ?? Code.Internal);
  return outcome.value;
}
