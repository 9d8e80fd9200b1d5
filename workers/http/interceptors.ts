import type { Interceptor } from "@connectrpc/connect";
import { allows, authenticate, bearerToken } from "../auth/principal";
import type { Rule } from "../services/registry";
import { kEnv, kPrincipal } from "../services/context";
import { permissionDenied, toConnectError, unauthenticated } from "../core/errors";

/** Maps every error a handler throws through the one error mapper. */
export const mapErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw toConnectError(err);
  }
};

/**
 * The one authorization check. It runs before every handler, finds the RPC's rule by its
 * path, resolves the caller from the bearer token and checks the rule's action and scope.
 */
export function authorize(rules: ReadonlyMap<string, Rule>): Interceptor {
  return (next) => async (req) => {
    const path = `${req.service.typeName}/${req.method.name}`;
    const rule = rules.get(path);
    if (!rule) throw permissionDenied(`${path} has no access rule, so it is refused`);
    // Public RPCs ignore any token sent along: none of them acts on the caller.
    if ("public" in rule) return next(req);
    const token = bearerToken(req.header);
    const env = req.contextValues.get(kEnv);
    if (!token) throw unauthenticated(`${path} needs an access token: log in and send \`Authorization: Bearer <token>\``);
    const principal = await authenticate(env, token);
    req.contextValues.set(kPrincipal, principal);
    if ("action" in rule) {
      const scope =
        rule.scope === "any" ? undefined : rule.scope ? rule.scope(req.stream ? {} : req.message, new URL(req.url)) : {};
      if (!allows(principal, rule.action, scope)) {
        throw permissionDenied(`${rule.action} is not granted to this ${principal.subjectType.replace("_", " ")}`);
      }
    }
    return next(req);
  };
}
