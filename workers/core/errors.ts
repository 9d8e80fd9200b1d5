/**
 * The one error mapper: handlers throw ConnectErrors built here, and `toConnectError`
 * turns anything else (D1 constraint failures, bugs) into the right code so that no
 * input surfaces as an unexplained `internal`.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** How D1 reports the admin guard's failure (the name of its CHECK constraint; auth/admins.ts). */
export const ADMIN_GUARD_FAILED = "an_admin_must_remain";

/** How much of a value a message shows: enough to recognize it, never a megabyte of it back. */
const SHOWN_CHARS = 64;

/** The first `max` characters (code points) of the value's text, and whether that is all of it. */
function prefix(value: unknown, max: number): { shown: string; length: number; whole: boolean } {
  const text = String(value);
  const chars = Array.from(text.slice(0, max * 2)).slice(0, max);
  const shown = chars.join("");
  return { shown, length: text.length, whole: shown.length === text.length };
}

/**
 * The value as a message shows it: whole when short, else its first characters and its length.
 * Every message that repeats what a client sent goes through this or `quote`, so no error is
 * much larger than the message itself.
 */
export function bounded(value: unknown, max = SHOWN_CHARS): string {
  const p = prefix(value, max);
  return p.whole ? p.shown : `${p.shown}… (${p.length} characters)`;
}

/** The value in double quotes, bounded: `"abc"`, or `"abcd…" (1048576 characters)`. */
export function quote(value: unknown, max = SHOWN_CHARS): string {
  const p = prefix(value, max);
  return p.whole ? `"${p.shown}"` : `"${p.shown}…" (${p.length} characters)`;
}

export const invalidArgument = (field: string, problem: string) =>
  new ConnectError(`${field}: ${problem}`, Code.InvalidArgument);
export const notFound = (what: string) => new ConnectError(`${what} not found`, Code.NotFound);
export const alreadyExists = (what: string) => new ConnectError(`${what} already exists`, Code.AlreadyExists);
export const failedPrecondition = (why: string) => new ConnectError(why, Code.FailedPrecondition);
export const unauthenticated = (why: string) => new ConnectError(why, Code.Unauthenticated);
export const permissionDenied = (why: string) => new ConnectError(why, Code.PermissionDenied);
export const aborted = (why: string) => new ConnectError(why, Code.Aborted);
export const unavailable = (why: string) => new ConnectError(why, Code.Unavailable);
export const resourceExhausted = (why: string, retryAfterSeconds?: number) => {
  const metadata = new Headers();
  if (retryAfterSeconds !== undefined) metadata.set("retry-after", String(retryAfterSeconds));
  return new ConnectError(why, Code.ResourceExhausted, metadata);
};

/** D1 reports unique violations as `UNIQUE constraint failed: <table>.<column>`. */
const uniqueViolation = /UNIQUE constraint failed: (\w+)\.(\w+)/;

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes(`CHECK constraint failed: ${ADMIN_GUARD_FAILED}`)) {
    return failedPrecondition("this would remove the last administrator: give another user the admin role first");
  }
  const unique = uniqueViolation.exec(message);
  if (unique) return alreadyExists(`${unique[1]!.replace(/s$/, "").replace(/_/g, " ")} with this ${unique[2]!.replace(/_/g, " ")}`);
  console.error("unexpected error", err);
  return new ConnectError("internal error; it has been logged", Code.Internal);
}
