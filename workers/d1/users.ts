/** Users in D1: lookups by id and by identifier, with their group ids in the same query, and the writes of a user's row. */
import type { pageOf } from "../core/pagination";
import type { Env } from "../env";
import { adminGuard } from "./admin-guard";
import { count, query, readBatch, total } from "./batch";
import { deleteMembershipsOf, insertMembership } from "./group-members";
import { assignAdminToFirstUser, deleteAssignmentsOf } from "./role-assignments";
import type { Row } from "./row";
import type { users } from "./schema";
import { insertSession, type NewSession, revokeSessionsOf } from "./sessions";
import { consumeCode, deleteCodesOf } from "./verification-codes";

/** A user's columns plus, from `selectUsers`, the JSON array of its group ids (sorted). */
export type UserRow = Row<typeof users> & { group_ids: string };

/** Columns of a user to write. */
export type UserColumns = Partial<Row<typeof users>>;

/** One of the three ways to name a user, already validated and normalized. */
export type Identifier = { kind: "email" | "username" | "phone_number"; value: string };

/** Every user column plus its group ids, so one query answers what the API shows of a user. */
export const selectUsers = (rest: string) => `SELECT u.*, (SELECT json_group_array(group_id) FROM
  (SELECT group_id FROM group_members WHERE member_id = u.id ORDER BY group_id)) AS group_ids FROM users u ${rest}`;

export const groupsOf = (row: { group_ids: string }): string[] => JSON.parse(row.group_ids) as string[];

export const getUser = (env: Env, id: string) => env.DB.prepare(selectUsers("WHERE id = ?")).bind(id).first<UserRow>();

export const findUser = (env: Env, id: Identifier) =>
  env.DB.prepare(selectUsers(`WHERE ${id.kind} = ?`)).bind(id.value).first<UserRow>();

/** Printable name: the first identifier a person would recognise. */
export const printableName = (u: Pick<UserRow, "email" | "username" | "phone_number" | "first_name" | "last_name">) =>
  [u.first_name, u.last_name].filter(Boolean).join(" ") || u.email || u.username || u.phone_number || "";

/** A row if there is any user at all. */
export const anyUserQuery = (env: Env) => query<{ one: number }>(env.DB.prepare("SELECT 1 AS one FROM users LIMIT 1"));

/** A page of the users matching the LIKE pattern `search` (empty: `%%`), oldest first, and how many match in all. */
export async function listUsersPage(env: Env, search: string, page: ReturnType<typeof pageOf>) {
  const where = `WHERE ?1 = '%%' OR email LIKE ?1 ESCAPE '\\' OR username LIKE ?1 ESCAPE '\\' OR phone_number LIKE ?1 ESCAPE '\\'
        OR (first_name || ' ' || last_name) LIKE ?1 ESCAPE '\\'`;
  const [rows, n] = await readBatch(
    env.DB,
    query<UserRow>(
      env.DB.prepare(selectUsers(`${where} ORDER BY created_at ${page.descending ? "DESC" : "ASC"}, id LIMIT ?2 OFFSET ?3`)).bind(
        search,
        page.limit,
        page.offset,
      ),
    ),
    count(env.DB.prepare(`SELECT COUNT(*) AS n FROM users ${where}`).bind(search)),
  );
  return { rows, total: total(n) };
}

/**
 * Self-registration, one transaction: the user is inserted only while `open` (always for the
 * very first user), that first user becomes admin, and `session`, when given, exists only if
 * the user does. False when registration was closed.
 */
export async function registerUser(
  env: Env,
  u: { id: string; identifier: Identifier; passwordHash: string; loginType: number; now: number; open: boolean },
  session?: NewSession,
): Promise<boolean> {
  const results = await env.DB.batch([
    env.DB.prepare(
      `INSERT INTO users (id, ${u.identifier.kind}, password_hash, register_method, register_login_type, created_at, updated_at)
       SELECT ?1, ?2, ?3, 'signup', ?4, ?5, ?5 WHERE ?6 OR NOT EXISTS (SELECT 1 FROM users)`,
    ).bind(u.id, u.identifier.value, u.passwordHash, u.loginType, u.now, u.open ? 1 : 0),
    assignAdminToFirstUser(env, u.id, u.now),
    ...(session ? [insertSession(env, session)] : []),
  ]);
  return results[0]!.meta.changes !== 0;
}

/** Inserts the user's `row` and its membership of `initialGroupId` when given, in one batch. */
export async function insertUser(
  env: Env,
  row: UserColumns & Pick<Row<typeof users>, "id" | "created_at">,
  initialGroupId?: string,
): Promise<void> {
  const keys = Object.keys(row);
  await env.DB.batch([
    env.DB.prepare(`INSERT INTO users (${keys.join(", ")}) VALUES (${keys.map(() => "?").join(", ")})`).bind(...Object.values(row)),
    ...(initialGroupId
      ? [insertMembership(env, { group_id: initialGroupId, member_id: row.id, member_type: "user", joined_at: row.created_at })]
      : []),
  ]);
}

/**
 * One UPDATE for all of `columns`; `resetSessions` also makes sessions start over from now.
 * Either, or a new password, revokes every live session in the same batch.
 */
export async function updateUser(env: Env, userId: string, columns: UserColumns, resetSessions: boolean): Promise<void> {
  const now = Date.now();
  const sets = Object.entries({ ...columns, updated_at: now, ...(resetSessions ? { new_sessions_since: now } : {}) });
  await env.DB.batch([
    env.DB.prepare(`UPDATE users SET ${sets.map(([k]) => `${k} = ?`).join(", ")} WHERE id = ?`).bind(...sets.map(([, v]) => v), userId),
    ...(resetSessions || columns.password_hash ? [revokeSessionsOf(env, userId)] : []),
  ]);
}

/** Deletes a user and everything that grants it access, as one batch, unless that leaves no admin. */
export async function deleteUser(env: Env, userId: string): Promise<void> {
  await env.DB.batch([
    env.DB.prepare("DELETE FROM users WHERE id = ?").bind(userId),
    revokeSessionsOf(env, userId),
    deleteAssignmentsOf(env, { type: "user", id: userId }),
    deleteMembershipsOf(env, userId),
    deleteCodesOf(env, userId),
    adminGuard(env),
  ]);
}

/** A password hash in a newer format, for the same password: sessions stay. */
export async function setPasswordHash(env: Env, userId: string, hash: string): Promise<void> {
  await env.DB.prepare("UPDATE users SET password_hash = ? WHERE id = ?").bind(hash, userId).run();
}

/** Consumes code `codeId` and marks the user's email verified, only if the code was still there (one batch); false when it was not. */
export async function verifyEmailWithCode(env: Env, codeId: string, userId: string): Promise<boolean> {
  const [consumed] = await env.DB.batch([
    consumeCode(env, codeId),
    env.DB.prepare("UPDATE users SET email_verified = 1, updated_at = ? WHERE id = ? AND changes() = 1").bind(Date.now(), userId),
  ]);
  return consumed!.meta.changes === 1;
}

/**
 * Consumes code `codeId` and sets the user's password, only if the code was still there, and
 * ends every session with it (one batch); false when the code was gone.
 */
export async function resetPasswordWithCode(env: Env, codeId: string, userId: string, hash: string): Promise<boolean> {
  const now = Date.now();
  const [consumed] = await env.DB.batch([
    consumeCode(env, codeId),
    env.DB.prepare("UPDATE users SET password_hash = ?, updated_at = ?, new_sessions_since = ? WHERE id = ? AND changes() = 1")
      .bind(hash, now, now, userId),
    revokeSessionsOf(env, userId),
  ]);
  return consumed!.meta.changes === 1;
}
