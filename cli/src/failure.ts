/** One line and one exit code for anything that ends a command early. */
import { CommanderError } from "@commander-js/extra-typings";
import { Code, ConnectError } from "@connectrpc/connect";
import { CliError, ExitCode } from "./exit";
import { color } from "./terminal";

/** Whether `e` is a request that never reached the server (refused connection, DNS, reset). */
export function unreachable(e: unknown): boolean {
  if (!(e instanceof ConnectError)) return e instanceof TypeError && e.message === "fetch failed";
  return e.code === Code.Unavailable || (e.code === Code.Unknown && e.cause instanceof TypeError);
}

/** The error itself: one thrown in an interceptor (an expired login, say) reaches us wrapped by Connect. */
export function unwrap(e: unknown): unknown {
  return e instanceof ConnectError && e.cause instanceof CliError ? e.cause : e;
}

/** The exit code for `e`. */
export function exitCode(e: unknown): number {
  if (e instanceof CommanderError) return e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  if (e instanceof CliError) return e.exitCode;
  if (unreachable(e)) return ExitCode.unreachable;
  if (e instanceof ConnectError) return ExitCode.refused;
  return ExitCode.rolloutFailed;
}

/** The error's line on stderr: the API's code and message, or ours. */
export function describe(e: unknown): string {
  const prefix = color.red("error:");
  if (unreachable(e)) {
    const cause = e instanceof ConnectError && e.cause instanceof Error && e.cause.cause instanceof Error ? `: ${e.cause.cause.message}` : "";
    return `${prefix} cannot reach the server${cause}`;
  }
  if (e instanceof ConnectError) return `${prefix} ${Code[e.code] ? codeName(e.code) : "unknown"}: ${e.rawMessage}`;
  if (e instanceof Error) return `${prefix} ${e.message}`;
  return `${prefix} ${String(e)}`;
}

/** Connect's snake_case name of a code, as the API's JSON errors spell it. */
export const codeName = (code: Code) => Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
