/** Values a Connect handler reads from its context: bindings, the raw request, the caller. */
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Principal } from "../auth/principal";
import type { Env } from "../env";
import { unauthenticated } from "../core/errors";

export const kEnv = createContextKey<Env>(undefined as unknown as Env, { description: "bindings" });
export const kExecution = createContextKey<ExecutionContext | undefined>(undefined, { description: "execution context" });
export const kRequest = createContextKey<Request | undefined>(undefined, { description: "HTTP request" });
export const kPrincipal = createContextKey<Principal | undefined>(undefined, { description: "caller" });

export const envOf = (ctx: HandlerContext) => ctx.values.get(kEnv);

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
