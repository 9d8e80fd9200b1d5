/**
 * Access and refresh tokens. Both are HS256 JWTs; the algorithm is pinned on verify so
 * `alg: none` and algorithm switching are refused, and the audience keeps a refresh token
 * from being used as an access token and the other way round.
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { defaults } from "../core/config";
import type { Env } from "../env";
import { unauthenticated } from "../core/errors";
import { installationHmacKey } from "./keys";

const ALG = "HS256";
const ACCESS = "edgeplane:access";
const REFRESH = "edgeplane:refresh";
const PURPOSE = "edgeplane:purpose";

export type SubjectType = "user" | "service_account";

export interface AccessClaims {
  /** Subject id: user or service account. */
  sub: string;
  sty: SubjectType;
  /** Session id. */
  jti: string;
  /** Session generation: a refresh supersedes the access tokens minted before it. */
  gen: number;
}

export interface RefreshClaims {
  sub: string;
  jti: string;
  /** Session generation this token was minted at; the session moves on at every refresh. */
  gen: number;
}

async function sign(env: Env, audience: string, claims: Record<string, unknown>, ttlMs: number): Promise<string> {
  const now = Date.now();
  return new SignJWT(claims)
    .setProtectedHeader({ alg: ALG, typ: "JWT" })
    .setIssuer(defaults.jwtIssuer)
    .setAudience(audience)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor((now + ttlMs) / 1000))
    .sign(await installationHmacKey(env));
}

async function verify(env: Env, token: string, audience: string, what: string) {
  try {
    const { payload } = await jwtVerify(token, await installationHmacKey(env), {
      algorithms: [ALG],
      issuer: defaults.jwtIssuer,
      audience,
    });
    return payload;
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw unauthenticated(`${what} has expired`);
    throw unauthenticated(`${what} is invalid`);
  }
}

export const mintAccessToken = (env: Env, c: AccessClaims, ttlMs: number) =>
  sign(env, ACCESS, { sty: c.sty, jti: c.jti, sub: c.sub, gen: c.gen }, ttlMs);

export const mintRefreshToken = (env: Env, c: RefreshClaims, ttlMs: number) =>
  sign(env, REFRESH, { jti: c.jti, sub: c.sub, gen: c.gen }, ttlMs);

export async function verifyAccessToken(env: Env, token: string): Promise<AccessClaims> {
  const p = await verify(env, token, ACCESS, "access token");
  if (
    typeof p.sub !== "string" || typeof p.jti !== "string" || typeof p.gen !== "number" ||
    (p.sty !== "user" && p.sty !== "service_account")
  ) {
    throw unauthenticated("access token is invalid");
  }
  return { sub: p.sub, jti: p.jti, sty: p.sty, gen: p.gen };
}

export async function verifyRefreshToken(env: Env, token: string): Promise<RefreshClaims> {
  const p = await verify(env, token, REFRESH, "refresh token");
  if (typeof p.sub !== "string" || typeof p.jti !== "string" || typeof p.gen !== "number") {
    throw unauthenticated("refresh token is invalid");
  }
  return { sub: p.sub, jti: p.jti, gen: p.gen };
}

/**
 * Purpose tokens bind a verification or reset request to the code record it created
 * (SendVerificationEmail and SendPasswordReset return one).
 */
export const mintPurposeToken = (env: Env, purpose: string, codeId: string, ttlMs: number) =>
  sign(env, PURPOSE, { jti: codeId, pur: purpose }, ttlMs);

export async function verifyPurposeToken(env: Env, token: string, purpose: string): Promise<string> {
  const p = await verify(env, token, PURPOSE, "token");
  if (p.pur !== purpose || typeof p.jti !== "string") throw unauthenticated("token is not valid for this request");
  return p.jti;
}
