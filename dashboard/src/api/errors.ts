import { Code, ConnectError } from "@connectrpc/connect";

/** The API's error code as it names them on the wire (`not_found`, `failed_precondition`). */
export function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

/** An error as the API said it: code and message, for showing next to what caused it. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof ConnectError) return { code: codeName(err.code), message: err.rawMessage };
  if (err instanceof Error) return { code: "error", message: err.message };
  return { code: "error", message: String(err) };
}
