import { create, type Message } from "@bufbuild/protobuf";
import type { Interceptor, StreamRequest, UnaryRequest } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import { permissionDenied, toConnectError } from "../core/errors";
import { envFrom, kPrincipal } from "../services/context";
import type { Rule } from "../services/registry";
import { guard, requireGrant } from "./guard";

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
    const env = envFrom(req.contextValues);
    // The caller first, so that nobody without a token gets a scope looked up.
    const principal = await guard(env, req.header, path, { authenticated: true });
    req.contextValues.set(kPrincipal, principal);
    if (!("action" in rule)) return next(req);
    const { message, forward } = await requestMessage(req);
    const scope = rule.scope === "any" ? undefined : rule.scope ? await rule.scope(message, new URL(req.url), env) : {};
    requireGrant(principal, rule.action, scope);
    return next(forward);
  };
}

/**
 * The request message a rule's scope is evaluated on, and the request to hand on. A
 * server-streaming call has exactly one request message, which the protocol delivers as a
 * stream: it is read here and handed on unchanged, so scoped grants apply to streams as they
 * do to unary calls. Client and bidirectional streams are scoped by their (empty) default
 * message, since waiting for their first message could hold the call open indefinitely;
 * their handlers check what later messages name.
 */
async function requestMessage(req: UnaryRequest | StreamRequest): Promise<{ message: Message; forward: UnaryRequest | StreamRequest }> {
  if (!req.stream) return { message: req.message, forward: req };
  if (req.method.methodKind !== "server_streaming") return { message: create(req.method.input), forward: req };
  const messages: Message[] = [];
  // Bounded by the router's readMaxBytes; more than one message is the protocol error the handler reports.
  for await (const m of req.message) messages.push(m);
  return { message: messages[0] ?? create(req.method.input), forward: { ...req, message: createAsyncIterable(messages) } };
}
