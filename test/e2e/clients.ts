/**
 * Connect clients for e2e tests, built as any user of the API builds them: over the network,
 * against the Worker started by global-setup.ts.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { inject } from "vitest";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";

export const workerUrl = (): string => inject("workerUrl");

/** A client of `service` authenticated with `token` (anonymous without), of the shared Worker or the one at `baseUrl`. */
export function client<S extends DescService>(service: S, token?: string, baseUrl = workerUrl()): Client<S> {
  return createClient(
    service,
    createConnectTransport({
      baseUrl,
      interceptors: [(next) => (req) => (token && req.header.set("authorization", `Bearer ${token}`), next(req))],
    }),
  );
}

/** Logs in as the installation's administrator and returns an access token. */
export async function adminToken(): Promise<string> {
  const { email, password } = inject("admin");
  const res = await client(AuthService).login({
    method: { case: "userPassword", value: { identifier: { identifier: { case: "email", value: email } }, password } },
  });
  if (!res.token?.accessToken) throw new Error("admin login returned no token");
  return res.token.accessToken;
}
