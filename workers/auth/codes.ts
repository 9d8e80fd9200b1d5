/**
 * Six-digit verification and password-reset codes. A code is stored only as an HMAC under
 * the installation key, expires after the configured TTL, allows a few wrong guesses and is
 * deleted by the request that uses it, so it works once even under concurrent requests.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { failedPrecondition, permissionDenied, resourceExhausted } from "../core/errors";
import { timingSafeEqual } from "../core/encoding";
import { hmacHex } from "./keys";

/** api.v1.user.VerificationType numbers. */
export const CodePurpose = { EMAIL: 1, RESET_PASSWORD: 3 } as const;
export type CodePurpose = (typeof CodePurpose)[keyof typeof CodePurpose];

/** A new code may be requested this long after the previous one at the earliest. */
const RESEND_INTERVAL_MS = 30_000;

export interface IssuedCode {
  id: string;
  code: string;
}

/** The user's code for `purpose`, if one is stored; `fresh` while a new one may not be sent yet. */
export async function liveCode(env: Env, userId: string, purpose: CodePurpose): Promise<{ id: string; fresh: boolean } | null> {
  const row = await env.DB.prepare("SELECT id, sent_at FROM verification_codes WHERE user_id = ? AND type = ?")
    .bind(userId, purpose)
    .first<{ id: string; sent_at: number }>();
  return row ? { id: row.id, fresh: Date.now() - row.sent_at < RESEND_INTERVAL_MS } : null;
}

/** Replaces the user's live code for `purpose` with a new one (an upsert, as Rig specifies). */
export async function issueCode(env: Env, userId: string, purpose: CodePurpose, ttlMs: number): Promise<IssuedCode> {
  const now = Date.now();
  const previous = await env.DB.prepare("SELECT sent_at FROM verification_codes WHERE user_id = ? AND type = ?")
    .bind(userId, purpose)
    .first<{ sent_at: number }>();
  if (previous && now - previous.sent_at < RESEND_INTERVAL_MS) {
    const wait = Math.ceil((previous.sent_at + RESEND_INTERVAL_MS - now) / 1000);
    throw resourceExhausted(`a code was sent moments ago: wait ${wait} seconds before asking for another`, wait);
  }
  const code = String(crypto.getRandomValues(new Uint32Array(1))[0]! % 1_000_000).padStart(6, "0");
  const id = crypto.randomUUID();
  await env.DB.prepare(
    `INSERT INTO verification_codes (id, user_id, type, code_hash, sent_at, expires_at, attempts)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)
     ON CONFLICT (user_id, type) DO UPDATE SET id = ?1, code_hash = ?4, sent_at = ?5, expires_at = ?6, attempts = 0, last_attempt_at = NULL`,
  )
    .bind(id, userId, purpose, await hmacHex(env, `${purpose}:${code}`), now, now + ttlMs)
    .run();
  return { id, code };
}

/**
 * Checks `code` against the user's live code and counts the attempt. On success returns the
 * statement that consumes the code; the caller runs it in the batch that applies the effect
 * and must check that it deleted a row (otherwise a concurrent request used the code first).
 */
export async function checkCode(
  env: Env,
  where: { codeId: string } | { userId: string },
  purpose: CodePurpose,
  code: string,
): Promise<{ userId: string; codeId: string; consume: D1PreparedStatement }> {
  const now = Date.now();
  const [column, value] = "codeId" in where ? ["id", where.codeId] : ["user_id", where.userId];
  const row = await env.DB.prepare(
    `UPDATE verification_codes SET attempts = attempts + 1, last_attempt_at = ?1
     WHERE ${column} = ?2 AND type = ?3 RETURNING id, user_id, code_hash, attempts, expires_at`,
  )
    .bind(now, value, purpose)
    .first<{ id: string; user_id: string; code_hash: string; attempts: number; expires_at: number }>();
  if (!row) throw failedPrecondition("no code is pending: ask for a new one");
  if (row.expires_at <= now) throw failedPrecondition("the code has expired: ask for a new one");
  if (row.attempts > defaults.verificationCodeMaxAttempts) {
    throw resourceExhausted("too many wrong codes: ask for a new one");
  }
  if (!/^\d{6}$/.test(code) || !timingSafeEqual(await hmacHex(env, `${purpose}:${code}`), row.code_hash)) {
    throw permissionDenied("the code is wrong");
  }
  return {
    userId: row.user_id,
    codeId: row.id,
    consume: env.DB.prepare("DELETE FROM verification_codes WHERE id = ?").bind(row.id),
  };
}
