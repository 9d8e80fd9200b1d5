/**
 * An installation with users must keep at least one administrator: someone holding the
 * predefined `admin` role, directly or through a group (the `admin_paths` view). Every
 * batch that could take the role away ends with `adminGuard`, which fails the batch, and so
 * rolls all of it back, when no admin would remain. Being a statement of the same
 * transaction, it also holds when two such changes race.
 */
import type { Env } from "../env";

/** The last statement of a batch that may remove an admin. */
export const adminGuard = (env: Env): D1PreparedStatement =>
  env.DB.prepare(
    "INSERT INTO admin_guard (ok) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM admin_paths) AND EXISTS (SELECT 1 FROM users)",
  );
