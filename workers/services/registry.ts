/**
 * How a service is declared: its descriptor, its implementation, and next to it the
 * access rule of every one of its RPCs (the types require a rule per RPC). The
 * authorization interceptor reads these rules before any handler runs; an RPC without a
 * rule is refused.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Scope } from "../auth/principal";
import type { Env } from "../env";

export type Rule =
  /** Callable without a token (login, register, refresh, verification, auth config). */
  | { public: true }
  /** Any logged-in user or service account, acting on itself. */
  | { authenticated: true }
  /**
   * Needs the action, in the scope the request names: in its message (unary and
   * server-streaming requests) or its URL (e.g. the environment of a Skaffold call). Without
   * a scope function the action must be granted for everything; `"any"` accepts a grant
   * anywhere, for lists that show only what the caller may see and handlers that check each
   * item. Client and bidirectional streams are scoped by their empty message; their
   * handlers check what later messages name. A scope may be looked up (with `env`) where
   * the request names a thing whose scope it does not carry, e.g. a rollout's environment.
   */
  | { action: string; scope?: ((message: any, url: URL, env: Env) => Scope | Promise<Scope>) | "any" };

export interface ServiceEntry {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
  rules: Record<string, Rule>;
}

/** The access rule of every RPC of `S`, by method local name. */
export type Rules<S extends DescService> = { [M in keyof ServiceImpl<S>]: Rule };

export function defineService<S extends DescService>(service: S, rules: Rules<S>, impl: Partial<ServiceImpl<S>>): ServiceEntry {
  return { service, impl: impl as Partial<ServiceImpl<DescService>>, rules: rules as Record<string, Rule> };
}

/**
 * A service whose RPCs a later milestone implements: its access rules are already
 * enforced, and every RPC then answers `unimplemented` naming itself.
 */
export const notYetImplemented = <S extends DescService>(service: S, rules: Rules<S>): ServiceEntry =>
  defineService(service, rules, {});
