/**
 * The runner's side of edgeplane's HTTP API: a service-account session (login with client
 * credentials, renewed before its access token expires) and runner socket tickets.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { z } from "zod";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";

/** edgeplane refused the runner for good (credentials or grants): retrying cannot help. */
export class Refused extends Error {}

/** Renew this long before the access token expires. */
const RENEW_EARLY_MS = 60_000;

const JwtClaims = z.object({ exp: z.number().optional() });
const TicketAnswer = z.object({ ticket: z.string(), expiresAt: z.string(), url: z.string() });
const ErrorAnswer = z.object({ code: z.string().optional(), message: z.string().optional() });

/** When a JWT expires (ms since the epoch), or in 5 minutes when it says nothing. */
function expiryOf(token: string): number {
  try {
    const claims = JwtClaims.parse(JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")));
    if (claims.exp) return claims.exp * 1000;
  } catch {
    // Not a JWT we can read: assume a short life.
  }
  return Date.now() + 5 * 60_000;
}

/** A session of the runner's service account. */
export class Session {
  private readonly auth;
  private token: { access: string; refresh: string; expiresAt: number } | null = null;

  constructor(
    private readonly base: URL,
    private readonly credentials: { clientId: string; clientSecret: string },
  ) {
    this.auth = createClient(AuthService, createConnectTransport({ baseUrl: base.href.replace(/\/$/, "") }));
  }

  /** A valid access token: logs in, or renews the current one when it is about to expire. */
  async accessToken(): Promise<string> {
    if (this.token && Date.now() < this.token.expiresAt - RENEW_EARLY_MS) return this.token.access;
    if (this.token) {
      try {
        const res = await this.auth.refreshToken({ refreshToken: this.token.refresh });
        if (res.token?.accessToken) return this.keep(res.token.accessToken, res.token.refreshToken);
      } catch (e) {
        // An expired or revoked refresh token: log in again below. Anything else (network) is the caller's to retry.
        if (!(e instanceof ConnectError) || e.code !== Code.Unauthenticated) throw e;
      }
    }
    try {
      const res = await this.auth.login({ method: { case: "clientCredentials", value: this.credentials } });
      if (!res.token?.accessToken) throw new Refused("edgeplane answered the login without a token");
      return this.keep(res.token.accessToken, res.token.refreshToken);
    } catch (e) {
      if (e instanceof ConnectError && [Code.Unauthenticated, Code.PermissionDenied, Code.NotFound, Code.InvalidArgument].includes(e.code)) {
        throw new Refused(`edgeplane refused the runner's client credentials: ${e.rawMessage}`);
      }
      throw e;
    }
  }

  /** Forgets the access token (edgeplane no longer took it), so the next call renews it. */
  invalidate(): void {
    if (this.token) this.token.expiresAt = 0;
  }

  private keep(access: string, refresh: string): string {
    this.token = { access, refresh, expiresAt: expiryOf(access) };
    return access;
  }

  /**
   * A single-use ticket and the WebSocket URL of the environment's runner socket. Throws
   * Refused when the account may not serve the environment or it does not exist.
   */
  async runnerSocketUrl(environmentId: string): Promise<URL> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.accessToken();
      const res = await fetch(new URL(`environments/${encodeURIComponent(environmentId)}/runner/tickets`, this.base), {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.ok) {
        const { url } = TicketAnswer.parse(await res.json());
        const socket = new URL(url, this.base);
        socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";
        return socket;
      }
      const why = ErrorAnswer.safeParse(await res.json().catch(() => ({})));
      const message = (why.success && why.data.message) || `HTTP ${res.status}`;
      if (res.status === 401 && attempt === 0) {
        this.invalidate();
        continue;
      }
      if (res.status === 401 || res.status === 403 || res.status === 404) throw new Refused(`edgeplane refused a runner socket for environment ${environmentId}: ${message}`);
      throw new Error(`runner ticket for environment ${environmentId}: ${message}`);
    }
  }
}
