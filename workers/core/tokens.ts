/**
 * Access and refresh tokens. Both are HS256 JWTs; the algorithm is pinned on verify so
 * `alg: none` and algorithm switching are refused, and the audience keeps a refresh token
 * from being used as an access token and the other way round. Each function takes the
 * signing key (the installation's: d1/installation-keys.ts).
 */
import { errors, jwtVerify, SignJWT } from "jose";
import { defaults } from "./config";
import { unauthenticated } from "./errors";

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

async function sign(key: CryptoKey, audience: string, claims: Record<string, unknown>, ttlMs: number): Promise<string> {
  const now = Date.now();
  return new SignJWT(claims)
    .setProtectedHeader({ alg: ALG, typ: "JWT" })
    .setIssuer(defaults.jwtIssuer)
    .setAudience(audience)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor((now + ttlMs) / 1000))
    .sign(key);
}

async function verify(key: CryptoKey, token: string, audience: string, what: string) {
  try {
    const { payload } = await jwtVerify(token, key, {
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

export const mintAccessToken = (key: CryptoKey, c: AccessClaims, ttlMs: number) =>
  sign(key, ACCESS, { sty: c.sty, jti: c.jti, sub: c.sub, gen: c.gen }, ttlMs);

export const mintRefreshToken = (key: CryptoKey, c: RefreshClaims, ttlMs: number) =>
  sign(key, REFRESH, { jti: c.jti, sub: c.sub, gen: c.gen }, ttlMs);

export async function verifyAccessToken(key: CryptoKey, token: string): Promise<AccessClaims> {
  const p = await verify(key, token, ACCESS, "access token");
  if (
    typeof p.sub !== "string" || typeof p.jti !== "string" || typeof p.gen !== "number" ||
    (p.sty !== "user" && p.sty !== "service_account")
  ) {
    throw unauthenticated("access token is invalid");
  }
  return { sub: p.sub, jti: p.jti, sty: p.sty, gen: p.gen };
}

export async function verifyRefreshToken(key: CryptoKey, token: string): Promise<RefreshClaims> {
  const p = await verify(key, token, REFRESH, "refresh token");
  if (typeof p.sub !== "string" || typeof p.jti !== "string" || typeof p.gen !== "number") {
    throw unauthenticated("refresh token is invalid");
  }
  return { sub: p.sub, jti: p.jti, gen: p.gen };
}

/**
 * Purpose tokens bind a verification or reset request to the code record it created
 * (SendVerificationEmail and SendPasswordReset return one).
 */
export const mintPurposeToken = (key: CryptoKey, purpose: string, codeId: string, ttlMs: number) =>
  sign(key, PURPOSE, { jti: codeId, pur: purpose }, ttlMs);

export async function verifyPurposeToken(key: CryptoKey, token: string, purpose: string): Promise<string> {
  const p = await verify(key, token, PURPOSE, "token");
  if (p.pur !== purpose || typeof p.jti !== "string") throw unauthenticated("token is not valid for this request");
  return p.jti;
}
