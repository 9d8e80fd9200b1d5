/** `verification_codes`: one live code per user and purpose, stored as an HMAC. */
import type { Env } from "../env";
import type { Columns } from "./row";
import type { verificationCodes } from "./schema";

/** The user's stored code for `type`: its id and when it was sent. */
export const findCode = (env: Env, userId: string, type: number) =>
  env.DB.prepare("SELECT id, sent_at FROM verification_codes WHERE user_id = ? AND type = ?")
    .bind(userId, type)
    .first<Columns<typeof verificationCodes, "id" | "sent_at">>();

/** Stores `code` as the user's live code for its type, replacing the previous one with its attempts. */
export async function upsertCode(
  env: Env,
  code: Columns<typeof verificationCodes, "id" | "user_id" | "type" | "code_hash" | "sent_at" | "expires_at">,
): Promise<void> {
  await env.DB.prepare(
    `INSERT INTO verification_codes (id, user_id, type, code_hash, sent_at, expires_at, attempts)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)
     ON CONFLICT (user_id, type) DO UPDATE SET id = ?1, code_hash = ?4, sent_at = ?5, expires_at = ?6, attempts = 0, last_attempt_at = NULL`,
  )
    .bind(code.id, code.user_id, code.type, code.code_hash, code.sent_at, code.expires_at)
    .run();
}

/** Counts an attempt at the code named by its id or its user, and returns it as it is now (null: none pending). */
export const countCodeAttempt = (env: Env, where: { codeId: string } | { userId: string }, type: number, now: number) => {
  const [column, value] = "codeId" in where ? ["id", where.codeId] : ["user_id", where.userId];
  return env.DB.prepare(
    `UPDATE verification_codes SET attempts = attempts + 1, last_attempt_at = ?1
     WHERE ${column} = ?2 AND type = ?3 RETURNING id, user_id, code_hash, attempts, expires_at`,
  )
    .bind(now, value, type)
    .first<Columns<typeof verificationCodes, "id" | "user_id" | "code_hash" | "attempts" | "expires_at">>();
};

/**
 * Deletes code `id`: the first statement of the batch that applies what the code allows,
 * whose other statements check `changes() = 1`, so only the request that consumed it wins.
 */
export const consumeCode = (env: Env, id: string): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM verification_codes WHERE id = ?").bind(id);

export const deleteCodesOf = (env: Env, userId: string): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM verification_codes WHERE user_id = ?").bind(userId);

export const deleteExpiredCodes = (env: Env, now: number): D1PreparedStatement =>
  env.DB.prepare("DELETE FROM verification_codes WHERE expires_at <= ?").bind(now);
