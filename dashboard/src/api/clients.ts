/**
 * Connect clients of the public APIs, generated from proto/gen, as any client builds them.
 * One interceptor adds the access token and, when the API answers `unauthenticated`,
 * refreshes it once and retries; a refused refresh ends the session.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Service as AuthService } from "../../../proto/gen/api/v1/authentication/service_pb";
import { Service as CapsuleService } from "../../../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../../../proto/gen/api/v1/environment/service_pb";
import { Service as GroupService } from "../../../proto/gen/api/v1/group/service_pb";
import { Service as ProjectService } from "../../../proto/gen/api/v1/project/service_pb";
import { Service as RoleService } from "../../../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../../../proto/gen/api/v1/service_account/service_pb";
import { Service as UserService } from "../../../proto/gen/api/v1/user/service_pb";
import { EnvironmentAutomationService } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { EnvironmentService as DevEnvironmentService } from "../../../proto/gen/gitpod/v1/environment_pb";
import { clearSession, session, setSession } from "./session";

const anonymous = createConnectTransport({ baseUrl: location.origin });

/** The auth service without a token: sign-in, register, refresh. */
export const publicAuth = createClient(AuthService, anonymous);

let refreshing: Promise<string | null> | null = null;

/**
 * Trades the refresh token for new tokens, once for all callers that need it at the same
 * time: refresh tokens rotate, so two refreshes with one token would revoke the session.
 */
export function refreshAccessToken(): Promise<string | null> {
  refreshing ??= (async () => {
    const current = session.value;
    if (!current) return null;
    try {
      const { token } = await publicAuth.refreshToken({ refreshToken: current.refreshToken });
      if (!token) throw new ConnectError("no token in the refresh answer", Code.Unauthenticated);
      setSession({ ...current, accessToken: token.accessToken, refreshToken: token.refreshToken });
      return token.accessToken;
    } catch (err) {
      const why = err instanceof ConnectError ? err.rawMessage : String(err);
      clearSession(`Your session ended (${why}). Sign in again.`);
      return null;
    }
  })().finally(() => (refreshing = null));
  return refreshing;
}

const withToken: Interceptor = (next) => async (req) => {
  const token = session.value?.accessToken;
  if (token) req.header.set("authorization", `Bearer ${token}`);
  try {
    return await next(req);
  } catch (err) {
    if (!(err instanceof ConnectError) || err.code !== Code.Unauthenticated || !token) throw err;
    const fresh = await refreshAccessToken();
    if (!fresh) throw err;
    req.header.set("authorization", `Bearer ${fresh}`);
    return next(req);
  }
};

const transport = createConnectTransport({ baseUrl: location.origin, interceptors: [withToken] });
const make = <S extends DescService>(s: S): Client<S> => createClient(s, transport);

/** Authenticated clients of every service the dashboard uses. */
export const api = {
  auth: make(AuthService),
  projects: make(ProjectService),
  environments: make(EnvironmentService),
  capsules: make(CapsuleService),
  users: make(UserService),
  groups: make(GroupService),
  roles: make(RoleService),
  serviceAccounts: make(ServiceAccountService),
  devEnvironments: make(DevEnvironmentService),
  automations: make(EnvironmentAutomationService),
};

/**
 * A POST to one of the ticket routes (event streams, Execute) with the access token,
 * refreshed once on 401 like an RPC. Answers the ticket's socket URL (ws: or wss:).
 */
export async function ticket(path: string, body?: unknown): Promise<string> {
  const post = (token: string | undefined) =>
    fetch(path, {
      method: "POST",
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  let res = await post(session.value?.accessToken);
  if (res.status === 401) {
    const fresh = await refreshAccessToken();
    if (fresh) res = await post(fresh);
  }
  const answer: unknown = await res.json().catch(() => ({}));
  const field = (k: string) => (answer && typeof answer === "object" && k in answer ? String((answer as Record<string, unknown>)[k]) : "");
  if (!res.ok) throw new ConnectError(field("message") || res.statusText, codeFromName(field("code")));
  return `${location.origin.replace(/^http/, "ws")}${field("url")}`;
}

function codeFromName(name: string): Code {
  const key = Object.keys(Code).find((k) => k.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase() === name);
  return key ? Code[key as keyof typeof Code] : Code.Unknown;
}
