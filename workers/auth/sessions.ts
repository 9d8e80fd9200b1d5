/**
 * Sessions and their token pairs. A refresh is a compare-and-swap on the session's
 * generation: exactly one of several concurrent refreshes of one token wins. A refresh
 * token presented again after it was rotated means it leaked, so the whole session is
 * revoked — unless it comes within a few seconds of the rotation, which is two requests
 * of one client racing, answered `aborted` without revoking anything.
 */
import { defaults } from "../core/config";
import { installationHmacKey } from "../d1/installation-keys";
import type { UserSettings } from "../d1/user-settings";
import type { Env } from "../env";
import { aborted, unauthenticated } from "../core/errors";
import { mintAccessToken, mintRefreshToken, type SubjectType, verifyRefreshToken } from "../core/tokens";

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

export interface Subject {
  type: SubjectType;
  id: string;
}

async function mintPair(env: Env, subject: Subject, sessionId: string, gen: number, s: UserSettings): Promise<TokenPair> {
  const key = await installationHmacKey(env);
  const [accessToken, refreshToken] = await Promise.all([
    mintAccessToken(key, { sub: subject.id, sty: subject.type, jti: sessionId, gen }, s.accessTokenTtlMs),
    mintRefreshToken(key, { sub: subject.id, jti: sessionId, gen }, s.refreshTokenTtlMs),
  ]);
  return { accessToken, refreshToken };
}

/** The statement that opens a session; run it in the same batch as the write that needs it. */
export function insertSessionStatement(
  env: Env,
  subject: Subject,
  loginType: number,
  s: UserSettings,
  request?: Request,
): { sessionId: string; statement: D1PreparedStatement } {
  const sessionId = crypto.randomUUID();
  const now = Date.now();
  const cf = request?.cf as { country?: string; postalCode?: string } | undefined;
  const statement = env.DB.prepare(
    `INSERT INTO sessions (id, subject_id, subject_type, login_type, created_at, expires_at, refresh_generation, country, postal_code)
     VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`,
  ).bind(sessionId, subject.id, subject.type, loginType, now, now + s.refreshTokenTtlMs, cf?.country ?? "", Number.parseInt(cf?.postalCode ?? "", 10) || 0);
  return { sessionId, statement };
}

/** Tokens for a session just inserted (generation 0). */
export const tokensForNewSession = (env: Env, subject: Subject, sessionId: string, s: UserSettings) =>
  mintPair(env, subject, sessionId, 0, s);

export async function refreshSession(env: Env, refreshToken: string, s: UserSettings): Promise<TokenPair> {
  const claims = await verifyRefreshToken(await installationHmacKey(env), refreshToken);
  const now = Date.now();
  const won = await env.DB.prepare(
    `UPDATE sessions SET refresh_generation = refresh_generation + 1, refresh_rotated_at = ?1, renewed_at = ?1, expires_at = ?2
     WHERE id = ?3 AND subject_id = ?4 AND refresh_generation = ?5 AND revoked_at IS NULL AND expires_at > ?1
     RETURNING refresh_generation, subject_type`,
  )
    .bind(now, now + s.refreshTokenTtlMs, claims.jti, claims.sub, claims.gen)
    .first<{ refresh_generation: number; subject_type: SubjectType }>();
  if (won) return mintPair(env, { type: won.subject_type, id: claims.sub }, claims.jti, won.refresh_generation, s);

  const session = await env.DB.prepare(
    "SELECT revoked_at, expires_at, refresh_generation, refresh_rotated_at FROM sessions WHERE id = ? AND subject_id = ?",
  )
    .bind(claims.jti, claims.sub)
    .first<{ revoked_at: number | null; expires_at: number; refresh_generation: number; refresh_rotated_at: number | null }>();
  if (!session) throw unauthenticated("session not found: log in again");
  if (session.revoked_at !== null) throw unauthenticated("session has been revoked: log in again");
  if (session.expires_at <= now) throw unauthenticated("session has expired: log in again");
  const racing =
    claims.gen === session.refresh_generation - 1 && now - (session.refresh_rotated_at ?? 0) < defaults.refreshReuseGraceMs;
  if (racing) throw aborted("this refresh token was rotated by a concurrent request a moment ago: use the tokens that request returned");
  await revokeSessions(env, "id = ?", claims.jti).run();
  throw unauthenticated("refresh token was already used, so the session has been revoked: log in again");
}

/** A statement revoking every live session matching `where` (e.g. "subject_id = ?"). */
export function revokeSessions(env: Env, where: string, ...params: unknown[]): D1PreparedStatement {
  return env.DB.prepare(`UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL AND ${where}`).bind(Date.now(), ...params);
}
