/**
 * Who is calling. Resolving a bearer token costs one signature check and one D1 round
 * trip: the session row (revocation takes effect on the next request, not at expiry) and
 * the subject's permissions (direct roles and roles of its groups) come back in one batch.
 */
import type { Env } from "../env";
import { unauthenticated } from "../http/errors";
import { type SubjectType, verifyAccessToken } from "./tokens";

export interface Permission {
  action: string;
  scope?: { resource?: string; environment?: string; project?: string };
}

export interface Principal {
  subjectType: SubjectType;
  subjectId: string;
  sessionId: string;
  permissions: Permission[];
}

export function bearerToken(headers: Headers): string | undefined {
  const value = headers.get("authorization");
  if (!value) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(value);
  if (!match) throw unauthenticated("authorization header must be `Bearer <access token>`");
  return match[1];
}

export async function authenticate(env: Env, token: string): Promise<Principal> {
  const claims = await verifyAccessToken(env, token);
  const [session, perms] = await env.DB.batch<Record<string, unknown>>([
    env.DB.prepare("SELECT revoked_at, expires_at, refresh_generation FROM sessions WHERE id = ? AND subject_id = ?").bind(claims.jti, claims.sub),
    env.DB.prepare(
      `SELECT r.permissions FROM role_assignments a JOIN roles r ON r.id = a.role_id
       WHERE (a.subject_type = ?1 AND a.subject_id = ?2)
          OR (a.subject_type = 'group' AND a.subject_id IN (SELECT group_id FROM group_members WHERE member_id = ?2))`,
    ).bind(claims.sty, claims.sub),
  ]);
  const row = session!.results[0] as { revoked_at: number | null; expires_at: number; refresh_generation: number } | undefined;
  if (!row) throw unauthenticated("session not found: log in again");
  if (row.revoked_at !== null) throw unauthenticated("session has been revoked: log in again");
  if (row.expires_at <= Date.now()) throw unauthenticated("session has expired: log in again");
  if (row.refresh_generation !== claims.gen) throw unauthenticated("access token was superseded by a token refresh: use the newest one");
  const permissions = perms!.results.flatMap((r) => JSON.parse(r.permissions as string) as Permission[]);
  return { subjectType: claims.sty, subjectId: claims.sub, sessionId: claims.jti, permissions };
}

/** The scope an RPC acts in; unset parts match anything the role grants. */
export interface Scope {
  resource?: string;
  project?: string;
  environment?: string;
}

const matches = (granted: string | undefined, wanted: string | undefined) =>
  !granted || granted === "*" || wanted === undefined || granted === wanted ||
  (granted.endsWith("/*") && wanted.startsWith(granted.slice(0, -1)));

const actionMatches = (granted: string, wanted: string) =>
  granted === "*" || granted === wanted || (granted.endsWith(":*") && wanted.startsWith(granted.slice(0, -1)));

/** True when one of the principal's permissions grants `action` in `scope`. */
export function allows(p: Principal, action: string, scope: Scope = {}): boolean {
  return p.permissions.some(
    (g) =>
      actionMatches(g.action, action) &&
      matches(g.scope?.resource, scope.resource) &&
      matches(g.scope?.project, scope.project) &&
      matches(g.scope?.environment, scope.environment),
  );
}
