/**
 * How a service is declared: its descriptor, its implementation, and next to it the
 * access rule of every one of its RPCs (the types require a rule per RPC). The
 * authorization interceptor reads these rules before any handler runs; an RPC without a
 * rule is refused.
 */
import type { DescMethod, DescService, MessageShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Action } from "../core/actions";
import type { Scope } from "../auth/principal";
import type { Env } from "../env";

/**
 * What a rule's scope function reads: the request message of a unary or server-streaming
 * RPC; of a client or bidirectional stream, nothing yet (its messages arrive after the
 * check), so every field may be missing.
 */
export type RequestOf<M extends DescMethod> = M["methodKind"] extends "unary" | "server_streaming"
  ? MessageShape<M["input"]>
  : Partial<MessageShape<M["input"]>>;

export type Rule<Req extends object = object> =
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
  | { action: Action; scope?: ((message: Req, url: URL, env: Env) => Scope | Promise<Scope>) | "any" };

export interface ServiceEntry {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
  rules: Record<string, Rule>;
}

/** The access rule of every RPC of `S`, by method local name. */
export type Rules<S extends DescService> = { [M in keyof S["method"]]: Rule<RequestOf<S["method"][M]>> };

export function defineService<S extends DescService>(service: S, rules: Rules<S>, impl: Partial<ServiceImpl<S>>): ServiceEntry {
  // Each rule is looked up by its RPC's name, so its scope function gets that RPC's request.
  return { service, impl: impl as Partial<ServiceImpl<DescService>>, rules: rules as Record<string, Rule> };
}

/**
 * A service whose RPCs a later milestone implements: its access rules are already
 * enforced, and every RPC then answers `unimplemented` naming itself.
 */
export const notYetImplemented = <S extends DescService>(service: S, rules: Rules<S>): ServiceEntry =>
  defineService(service, rules, {});
