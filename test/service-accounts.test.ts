import { Code, ConnectError } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { ListResponseSchema, Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { toJsonString } from "@bufbuild/protobuf";
import { client } from "./helpers/client";
import { registerAdmin } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof registerAdmin>>;
beforeAll(async () => {
  admin = await registerAdmin();
});

const loginWith = (clientId: string, clientSecret: string) =>
  client(AuthService).login({ method: { case: "clientCredentials", value: { clientId, clientSecret } } });

describe("service accounts", () => {
  it("returns the secret exactly once and stores only its hash", async () => {
    const sa = client(ServiceAccountService, admin.accessToken);
    const created = await sa.create({ name: "ci-runner" });
    expect(created.clientId).toMatch(/^rig_[0-9a-f-]{36}$/);
    expect(created.clientSecret).toMatch(/^secret_[0-9a-f]{64}$/);
    expect(created.serviceAccount?.name).toBe("ci-runner");

    const listed = await sa.list({});
    const entry = listed.serviceAccounts.find((s) => s.name === "ci-runner")!;
    expect(entry.clientId).toBe(created.clientId);
    expect(toJsonString(ListResponseSchema, listed)).not.toContain(created.clientSecret);

    const rows = await env.DB.prepare("SELECT * FROM service_accounts").all();
    expect(JSON.stringify(rows.results)).not.toContain(created.clientSecret);
    expect(JSON.stringify(rows.results)).not.toContain(created.clientSecret.slice("secret_".length));
  });

  it("logs in with client credentials and is revoked on delete", async () => {
    const sa = client(ServiceAccountService, admin.accessToken);
    const created = await sa.create({ name: "deployer" });
    const session = await loginWith(created.clientId, created.clientSecret);
    const me = client(AuthService, session.token!.accessToken);
    expect((await me.get({})).userInfo?.username).toBe("deployer");

    const id = (await sa.list({})).serviceAccounts.find((s) => s.name === "deployer")!.serviceAccountId;
    await sa.delete({ serviceAccountId: id });
    const err = ConnectError.from(await me.get({}).catch((e) => e));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(ConnectError.from(await loginWith(created.clientId, created.clientSecret).catch((e) => e)).code).toBe(Code.Unauthenticated);
  });

  it("refuses a wrong secret", async () => {
    const created = await client(ServiceAccountService, admin.accessToken).create({ name: "wrong-secret" });
    const err = ConnectError.from(await loginWith(created.clientId, `secret_${"0".repeat(64)}`).catch((e) => e));
    expect(err.code).toBe(Code.Unauthenticated);
  });

  it("validates names, refuses duplicates and unknown ids", async () => {
    const sa = client(ServiceAccountService, admin.accessToken);
    for (const name of ["", "Upper", "has_underscore", "-dash", "x".repeat(64)]) {
      expect(ConnectError.from(await sa.create({ name }).catch((e) => e)).code, name).toBe(Code.InvalidArgument);
    }
    await sa.create({ name: "twice" });
    expect(ConnectError.from(await sa.create({ name: "twice" }).catch((e) => e)).code).toBe(Code.AlreadyExists);
    expect(ConnectError.from(await sa.delete({ serviceAccountId: crypto.randomUUID() }).catch((e) => e)).code).toBe(Code.NotFound);
    expect(ConnectError.from(await sa.create({ name: "grouped", initialGroupId: "no-such-group" }).catch((e) => e)).code).toBe(
      Code.NotFound,
    );
  });

  it("is refused to callers without serviceaccount permissions", async () => {
    const created = await client(ServiceAccountService, admin.accessToken).create({ name: "no-perms" });
    const session = await loginWith(created.clientId, created.clientSecret);
    const err = ConnectError.from(await client(ServiceAccountService, session.token!.accessToken).list({}).catch((e) => e));
    expect(err.code).toBe(Code.PermissionDenied);
  });
});
