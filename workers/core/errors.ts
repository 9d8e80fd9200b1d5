/**
 * The one error mapper: handlers throw ConnectErrors built here, and `toConnectError`
 * turns anything else (D1 constraint failures, bugs) into the right code so that no
 * input surfaces as an unexplained `internal`.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** How D1 reports the admin guard's failure (the name of its CHECK constraint; auth/admins.ts). */
export const ADMIN_GUARD_FAILED = "an_admin_must_remain";

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
