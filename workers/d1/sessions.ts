/** `sessions`: one row per login; access tokens name it and refresh tokens carry its generation. */
import type { pageOf } from "../core/pagination";
import type { SubjectType } from "../core/tokens";
import type { Env } from "../env";
import { count, query, readBatch, total } from "./batch";
import { clearLoginFailures } from "./login-failures";
import type { Columns, Row } from "./row";
import type { sessions } from "./schema";

/** A session as ListSessions shows it. */
export type SessionRow = Row<typeof sessions>;

/** The columns a new session is given; the others start at their defaults. */
export type NewSession = Columns<
  typeof sessions,
  "id" | "subject_id" | "subject_type" | "login_type" | "created_at" | "expires_at" | "country" | "postal_code"
>;

/** The statement that opens `s`, for the batch of the write that needs it. */
export const insertSession = (env: Env, s: NewSession): D1PreparedStatement =>
  env.DB.prepare(
    `INSERT INTO sessions (id, subject_id, subject_type, login_type, created_at, expires_at, refresh_generation, country, postal_code)
     VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
  ).bind(s.id, s.subject_id, s.subject_type, s.login_type, s.created_at, s.expires_at, s.country, s.postal_code);

/** A login that succeeded: opens `s` and forgets the failed logins of `throttleKey`, in one batch. */
export async function insertLoginSession(env: Env, s: NewSession, throttleKey: string): Promise<void> {
  await env.DB.batch([insertSession(env, s), clearLoginFailures(env, throttleKey)]);
}

/**
 * A refresh's compare-and-swap: moves the live session from `generation` to the next one and
 * extends it to `expiresAt`. Null when it lost (revoked, expired, or at another generation).
 */
export const rotateSession = (
  env: Env,
  s: { id: string; subjectId: string; generation: number },
  now: number,
  expiresAt: number,
) =>
  env.DB.prepare(
    `UPDATE sessions SET refresh_generation = refresh_generation + 1, refresh_rotated_at = ?1, renewed_at = ?1, expires_at = ?2
     WHERE id = ?3 AND subject_id = ?4 AND refresh_generation = ?5 AND revoked_at IS NULL AND expires_at > ?1
     RETURNING refresh_generation, subject_type`,
  )
    .bind(now, expiresAt, s.id, s.subjectId, s.generation)
    // Only Login and Register write subject_type, from a SubjectType.
    .first<Columns<typeof sessions, "refresh_generation" | "subject_type"> & { subject_type: SubjectType }>();

/** What tells why a refresh lost its compare-and-swap. */
export const getRefreshState = (env: Env, id: string, subjectId: string) =>
  env.DB.prepare("SELECT revoked_at, expires_at, refresh_generation, refresh_rotated_at FROM sessions WHERE id = ? AND subject_id = ?")
    .bind(id, subjectId)
    .first<Columns<typeof sessions, "revoked_at" | "expires_at" | "refresh_generation" | "refresh_rotated_at">>();

/** Whether an access token's session still holds, for the batch that authenticates a request. */
export const sessionValidityQuery = (env: Env, id: string, subjectId: string) =>
  query<Columns<typeof sessions, "revoked_at" | "expires_at" | "refresh_generation">>(
    env.DB.prepare("SELECT revoked_at, expires_at, refresh_generation FROM sessions WHERE id = ? AND subject_id = ?").bind(id, subjectId),
  );

const revoke = (env: Env, where: string, ...params: unknown[]): D1PreparedStatement =>
  env.DB.prepare(`UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND ${where}`).bind(Date.now(), ...params);

export async function revokeSession(env: Env, id: string): Promise<void> {
  await revoke(env, "id = ?", id).run();
}

/** A statement revoking every live session of `subjectId`. */
export const revokeSessionsOf = (env: Env, subjectId: string): D1PreparedStatement => revoke(env, "subject_id = ?", subjectId);

/** `revokeSessionsOf` that acts only if the statement before it in the batch changed a row (the subject's delete). */
export const revokeSessionsOfDeleted = (env: Env, subjectId: string): D1PreparedStatement =>
  revoke(env, "subject_id = ? AND changes() = 1", subjectId);

/** A page of the sessions of `subjectId`, by creation time, and how many it has in all. */
export async function listSessionsPage(env: Env, subjectId: string, page: ReturnType<typeof pageOf>): Promise<{ rows: SessionRow[]; total: bigint }> {
  const [rows, n] = await readBatch(
    env.DB,
    query<SessionRow>(
      env.DB.prepare(`SELECT * FROM sessions WHERE subject_id = ? ORDER BY created_at ${page.descending ? "DESC" : "ASC"}, id LIMIT ? OFFSET ?`).bind(
        subjectId,
        page.limit,
        page.offset,
      ),
    ),
    count(env.DB.prepare("SELECT COUNT(*) AS n FROM sessions WHERE subject_id = ?").bind(subjectId)),
  );
  return { rows, total: total(n) };
}
