/**
 * Sessions and their token pairs. A refresh is a compare-and-swap on the session's
 * generation: exactly one of several concurrent refreshes of one token wins. A refresh
 * token presented again after it was rotated means it leaked, so the whole session is
 * revoked — unless it comes within a few seconds of the rotation, which is two requests
 * of one client racing, answered `aborted` without revoking anything.
 */
import { defaults } from "../core/config";
import { installationHmacKey } from "../d1/installation-keys";
import { getRefreshState, type NewSession, revokeSession, rotateSession } from "../d1/sessions";
import type { UserSettings } from "../d1/settings";
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

/** The row of a new session; insert it in the same batch as the write that needs it (d1/sessions.ts). */
export function newSession(subject: Subject, loginType: number, s: UserSettings, request?: Request): NewSession {
  const now = Date.now();
  const cf = request?.cf as { country?: string; postalCode?: string } | undefined;
  return {
    id: crypto.randomUUID(),
    subject_id: subject.id,
    subject_type: subject.type,
    login_type: loginType,
    created_at: now,
    expires_at: now + s.refreshTokenTtlMs,
    country: cf?.country ?? "",
    postal_code: Number.parseInt(cf?.postalCode ?? "", 10) || 0,
  };
}

/** Tokens for a session just inserted (generation 0). */
export const tokensForNewSession = (env: Env, subject: Subject, sessionId: string, s: UserSettings) =>
  mintPair(env, subject, sessionId, 0, s);

export async function refreshSession(env: Env, refreshToken: string, s: UserSettings): Promise<TokenPair> {
  const claims = await verifyRefreshToken(await installationHmacKey(env), refreshToken);
  const now = Date.now();
  const won = await rotateSession(env, { id: claims.jti, subjectId: claims.sub, generation: claims.gen }, now, now + s.refreshTokenTtlMs);
  if (won) return mintPair(env, { type: won.subject_type, id: claims.sub }, claims.jti, won.refresh_generation, s);

  const session = await getRefreshState(env, claims.jti, claims.sub);
  if (!session) throw unauthenticated("session not found: log in again");
  if (session.revoked_at !== null) throw unauthenticated("session has been revoked: log in again");
  if (session.expires_at <= now) throw unauthenticated("session has expired: log in again");
  const racing =
    claims.gen === session.refresh_generation - 1 && now - (session.refresh_rotated_at ?? 0) < defaults.refreshReuseGraceMs;
  if (racing) throw aborted("this refresh token was rotated by a concurrent request a moment ago: use the tokens that request returned");
  await revokeSession(env, claims.jti);
  throw unauthenticated("refresh token was already used, so the session has been revoked: log in again");
}
