/**
 * Who is calling. Resolving a bearer token costs one signature check and one D1 round
 * trip: the session row (revocation takes effect on the next request, not at expiry), the
 * subject's permissions (direct roles and roles of its groups) and the subject itself come
 * back in one batch (d1/principals.ts), so handlers that only need the caller read nothing more.
 */
import { installationHmacKey } from "../d1/installation-keys";
import { readPrincipal, type SubjectRow } from "../d1/principals";
import type { Env } from "../env";
import { unauthenticated } from "../core/errors";
import type { Action } from "../core/actions";
import { type SubjectType, verifyAccessToken } from "../core/tokens";

export interface Permission {
  action: string;
  scope?: { resource?: string; environment?: string; project?: string };
}

export interface Principal {
  subjectType: SubjectType;
  subjectId: string;
  sessionId: string;
  permissions: Permission[];
  /** The caller's row, as of this request. */
  subject: SubjectRow;
}

export function bearerToken(headers: Headers): string | undefined {
  const value = headers.get("authorization");
  if (!value) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(value);
  if (!match) throw unauthenticated("authorization header must be `Bearer <access token>`");
  return match[1];
}

export async function authenticate(env: Env, token: string): Promise<Principal> {
  const claims = await verifyAccessToken(await installationHmacKey(env), token);
  const { session, permissions: roles, subject } = await readPrincipal(env, claims.jti, { type: claims.sty, id: claims.sub });
  if (!session) throw unauthenticated("session not found: log in again");
  if (session.revoked_at !== null) throw unauthenticated("session has been revoked: log in again");
  if (session.expires_at <= Date.now()) throw unauthenticated("session has expired: log in again");
  if (session.refresh_generation !== claims.gen) throw unauthenticated("access token was superseded by a token refresh: use the newest one");
  if (!subject) throw unauthenticated(`${claims.sty.replace("_", " ")} no longer exists`);
  const permissions = roles.flatMap((r) => JSON.parse(r.permissions) as Permission[]);
  return {
    subjectType: claims.sty,
    subjectId: claims.sub,
    sessionId: claims.jti,
    permissions,
    subject,
  };
}

/**
 * The scope an RPC acts in. A part left out means all of them (`*`), which only a grant
 * for all of them covers: a role scoped to one project never reaches beyond it.
 */
export interface Scope {
  resource?: string;
  project?: string;
  environment?: string;
}

const matches = (granted: string | undefined, wanted = "*") =>
  !granted || granted === "*" || granted === wanted || (granted.endsWith("/*") && wanted.startsWith(granted.slice(0, -1)));

const actionMatches = (granted: string, wanted: string) =>
  granted === "*" || granted === wanted || (granted.endsWith(":*") && wanted.startsWith(granted.slice(0, -1)));

/**
 * True when one of the principal's permissions grants `action` in `scope`, or, with no
 * scope, anywhere at all (for lists, which then show only what the caller may see).
 */
export function allows(p: Principal, action: Action, scope?: Scope): boolean {
  if (!scope) return p.permissions.some((g) => actionMatches(g.action, action));
  return p.permissions.some(
    (g) =>
      actionMatches(g.action, action) &&
      matches(g.scope?.resource, scope.resource) &&
      matches(g.scope?.project, scope.project) &&
      matches(g.scope?.environment, scope.environment),
  );
}

/**
 * True when `held` grants all that `wanted` grants: some held permission reaches its action
 * (a wildcard only by an equal or wider one) in every part of its scope.
 */
export function covers(held: readonly Permission[], wanted: Permission): boolean {
  return held.some(
    (g) =>
      actionMatches(g.action, wanted.action) &&
      matches(g.scope?.resource, wanted.scope?.resource || "*") &&
      matches(g.scope?.project, wanted.scope?.project || "*") &&
      matches(g.scope?.environment, wanted.scope?.environment || "*"),
  );
}
