/**
 * How a service is declared: its descriptor, its implementation, and next to it the
 * access rule of every RPC it implements. The authorization interceptor reads these
 * rules; an implemented RPC without a rule is refused.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Scope } from "../auth/principal";

export type Rule =
  /** Callable without a token (login, register, refresh, verification, auth config). */
  | { public: true }
  /** Any logged-in user or service account, acting on itself. */
  | { authenticated: true }
  /** Needs the action, in the scope the request names. */
  | { action: string; scope?: (message: any) => Scope };

export interface ServiceEntry {
  service: DescService;
  impl: Partial<ServiceImpl<DescService>>;
  rules: Record<string, Rule>;
}

export function defineService<S extends DescService>(
  service: S,
  rules: { [M in keyof ServiceImpl<S>]?: Rule },
  impl: Partial<ServiceImpl<S>>,
): ServiceEntry {
  return { service, impl: impl as Partial<ServiceImpl<DescService>>, rules: rules as Record<string, Rule> };
}

/** A service whose RPCs a later milestone implements: every RPC answers `unimplemented`. */
export const notYetImplemented = (service: DescService): ServiceEntry => ({ service, impl: {}, rules: {} });
