/**
 * Six-digit verification and password-reset codes. A code is stored only as an HMAC under
 * the installation key, expires after the configured TTL, allows a few wrong guesses and is
 * deleted by the request that uses it, so it works once even under concurrent requests.
 */
import { defaults } from "../core/config";
import type { Env } from "../env";
import { failedPrecondition, permissionDenied, resourceExhausted } from "../core/errors";
import { timingSafeEqual } from "../core/encoding";
import { countCodeAttempt, findCode, upsertCode } from "../d1/verification-codes";
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
  const row = await findCode(env, userId, purpose);
  return row ? { id: row.id, fresh: Date.now() - row.sent_at < RESEND_INTERVAL_MS } : null;
}

/** Replaces the user's live code for `purpose` with a new one (an upsert, as Rig specifies). */
export async function issueCode(env: Env, userId: string, purpose: CodePurpose, ttlMs: number): Promise<IssuedCode> {
  const now = Date.now();
  const previous = await findCode(env, userId, purpose);
  if (previous && now - previous.sent_at < RESEND_INTERVAL_MS) {
    const wait = Math.ceil((previous.sent_at + RESEND_INTERVAL_MS - now) / 1000);
    throw resourceExhausted(`a code was sent moments ago: wait ${wait} seconds before asking for another`, wait);
  }
  const code = String(crypto.getRandomValues(new Uint32Array(1))[0]! % 1_000_000).padStart(6, "0");
  const id = crypto.randomUUID();
  await upsertCode(env, {
    id,
    user_id: userId,
    type: purpose,
    code_hash: await hmacHex(env, `${purpose}:${code}`),
    sent_at: now,
    expires_at: now + ttlMs,
  });
  return { id, code };
}

/**
 * Checks `code` against the user's live code and counts the attempt. On success returns the
 * code's id; the caller consumes it in the batch that applies the effect (`d1/users.ts`) and
 * must check that it was still there (otherwise a concurrent request used the code first).
 */
export async function checkCode(
  env: Env,
  where: { codeId: string } | { userId: string },
  purpose: CodePurpose,
  code: string,
): Promise<{ userId: string; codeId: string }> {
  const now = Date.now();
  const row = await countCodeAttempt(env, where, purpose, now);
  if (!row) throw failedPrecondition("no code is pending: ask for a new one");
  if (row.expires_at <= now) throw failedPrecondition("the code has expired: ask for a new one");
  if (row.attempts > defaults.verificationCodeMaxAttempts) {
    throw resourceExhausted("too many wrong codes: ask for a new one");
  }
  if (!/^\d{6}$/.test(code) || !timingSafeEqual(await hmacHex(env, `${purpose}:${code}`), row.code_hash)) {
    throw permissionDenied("the code is wrong");
  }
  return { userId: row.user_id, codeId: row.id };
}
