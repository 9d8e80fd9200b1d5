/**
 * The one authorization check of every HTTP route: Connect's interceptor, the socket ticket
 * routes, Skaffold's HTTP gateway and JSON lines all call `guard`. It resolves the caller from
 * the bearer token and checks the action in the scope the request names.
 */
import { allows, authenticate, bearerToken, type Principal, type Scope } from "../auth/principal";
import type { Action } from "../core/actions";
import { permissionDenied, unauthenticated } from "../core/errors";
import type { Env } from "../env";

/**
 * What a route needs: any caller with a token, or one holding `action` in `scope` (with no
 * scope, anywhere: lists that show only what the caller may see, handlers that check each item).
 */
export type Need = { authenticated: true } | { action: Action; scope: Scope | undefined };

/**
 * The caller of a request to `route` (named in refusals), once it holds what `need` says:
 * unauthenticated without a valid bearer token, permission_denied without the grant.
 */
export async function guard(env: Env, headers: Headers, route: string, need: Need): Promise<Principal> {
  const token = bearerToken(headers);
  if (!token) throw unauthenticated(`${route} needs an access token: log in and send \`Authorization: Bearer <token>\``);
  const principal = await authenticate(env, token);
  if ("action" in need) requireGrant(principal, need.action, need.scope);
  return principal;
}

/** Refuses unless `principal` holds `action` in `scope`, naming what is missing where. */
export function requireGrant(principal: Principal, action: Action, scope: Scope | undefined): void {
  if (allows(principal, action, scope)) return;
  const where = scope ? [scope.resource, scope.project && `project ${scope.project}`, scope.environment && `environment ${scope.environment}`].filter(Boolean) : [];
  const subject = principal.subjectType.replace("_", " ");
  throw permissionDenied(`${action}${where.length ? ` (${where.join(", ")})` : ""} is not granted to this ${subject}`);
}
