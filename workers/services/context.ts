/** Values a Connect handler reads from its context: bindings, the raw request, the caller. */
import { type ContextValues, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Principal } from "../auth/principal";
import type { Env } from "../env";
import { unauthenticated } from "../core/errors";

export const kEnv = createContextKey<Env | undefined>(undefined, { description: "bindings" });
export const kExecution = createContextKey<ExecutionContext | undefined>(undefined, { description: "execution context" });
export const kRequest = createContextKey<Request | undefined>(undefined, { description: "HTTP request" });
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "caller" });

/** The bindings; the Connect adapter sets them on every request, so their absence is a wiring bug (internal). */
export function envFrom(values: ContextValues): Env {
  const env = values.get(kEnv);
  if (!env) throw new Error("the Connect adapter did not set the bindings");
  return env;
}

export const envOf = (ctx: HandlerContext) => envFrom(ctx.values);

/** The authenticated caller; the authorization interceptor guarantees one for non-public RPCs. */
export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(kPrincipal);
  if (!p) throw unauthenticated("this RPC needs an access token: log in and send `Authorization: Bearer <token>`");
  return p;
}

/** Runs `work` after the response is sent, where the runtime allows it. */
export function afterResponse(ctx: HandlerContext, work: Promise<unknown>): void {
  const exec = ctx.values.get(kExecution);
  if (exec) exec.waitUntil(work);
  else void work;
}
