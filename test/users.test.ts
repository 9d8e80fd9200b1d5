import { Code, ConnectError } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as UserService } from "../proto/gen/api/v1/user/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { codeOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { freshEmail, login, registerAdmin, strongPassword } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof registerAdmin>>;
const users = () => client(UserService, admin.accessToken);

beforeAll(async () => {
  admin = await registerAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({
    settings: [{ field: { case: "passwordHashing", value: { method: { case: "bcrypt", value: { cost: 4 } } } } }],
  });
});

const create = (email: string, extra: object[] = []) =>
  users().create({
    initializers: [{ field: { case: "email", value: email } }, { field: { case: "password", value: strongPassword } }, ...extra] as never,
  });

describe("user.Service", () => {
  it("creates, gets, updates and deletes a user", async () => {
    const email = freshEmail("managed");
    const { user } = await create(email, [{ field: { case: "profile", value: { firstName: "Ada", lastName: "Lovelace" } } }]);
    expect(user?.userInfo?.email).toBe(email);
    expect(user?.registerInfo?.method?.method.case).toBe("system");
    expect(user?.registerInfo?.createrId).toBe(admin.userId);
    expect((await users().get({ userId: user!.userId })).user?.profile?.firstName).toBe("Ada");

    await users().update({
      userId: user!.userId,
      updates: [
        { field: { case: "username", value: "ada" } },
        { field: { case: "isEmailVerified", value: true } },
        { field: { case: "setMetadata", value: { key: "team", value: new TextEncoder().encode("core") } } },
      ],
    });
    const got = (await users().getByIdentifier({ identifier: { identifier: { case: "username", value: "ada" } } })).user!;
    expect(got.isEmailVerified).toBe(true);
    expect(new TextDecoder().decode(got.metadata.team)).toBe("core");

    await users().delete({ userId: user!.userId });
    expect(await codeOf(users().get({ userId: user!.userId }))).toBe(Code.NotFound);
  });

  it("resets sessions on request", async () => {
    const email = freshEmail();
    const { user } = await create(email);
    const s = await login(email);
    await users().update({ userId: user!.userId, updates: [{ field: { case: "resetSessions", value: {} } }] });
    expect(await codeOf(client(AuthService, s.token!.accessToken).get({}))).toBe(Code.Unauthenticated);
    const sessions = await users().listSessions({ userId: user!.userId });
    expect(sessions.total).toBe(1n);
    expect(sessions.sessions[0]!.session?.isInvalidated).toBe(true);
  });

  it("imports a bcrypt hash made elsewhere", async () => {
    const email = freshEmail("imported");
    const { user } = await users().create({ initializers: [{ field: { case: "email", value: email } }] });
    // bcrypt("imported-Pass-1", cost 4), computed outside edgeplane.
    const { default: bcrypt } = await import("bcryptjs");
    const hash = await bcrypt.hash("imported-Pass-1", 4);
    await users().update({
      userId: user!.userId,
      updates: [{ field: { case: "hashedPassword", value: { config: { method: { case: "bcrypt", value: { cost: 4 } } }, hash: new TextEncoder().encode(hash) } } }],
    });
    expect((await login(email, "imported-Pass-1")).userId).toBe(user!.userId);
  });

  it("lists with totals, search and Rig's pagination limits", async () => {
    for (let i = 0; i < 3; i++) await create(freshEmail("listed"));
    const all = await users().list({});
    expect(Number(all.total)).toBe(all.users.length);
    const searched = await users().list({ search: "listed" });
    expect(searched.total).toBe(3n);
    const page = await users().list({ search: "listed", pagination: { offset: 1, limit: 1 } });
    expect(page.users).toHaveLength(1);
    expect(page.total).toBe(3n);
    const desc = await users().list({ search: "listed", pagination: { descending: true } });
    expect(desc.users.map((u) => u.userId)).toEqual([...searched.users.map((u) => u.userId)].reverse());

    for (let i = 0; i < 50; i++) {
      await env.DB.prepare("INSERT INTO users (id, username, register_method, created_at, updated_at) VALUES (?, ?, 'system', ?, ?)")
        .bind(crypto.randomUUID(), `bulk${i}`, Date.now(), Date.now())
        .run();
    }
    expect((await users().list({ pagination: { limit: 0 } })).users).toHaveLength(50);
    expect((await users().list({ pagination: { limit: 5000 } })).users).toHaveLength(50);
    expect((await users().list({ pagination: { limit: 7 } })).users).toHaveLength(7);
  });

  it("validates input and names the field", async () => {
    const err = ConnectError.from(await users().create({ initializers: [{ field: { case: "email", value: "nope" } }] }).catch((e) => e));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toContain("updates[0].email");
    expect(await codeOf(users().create({ initializers: [] }))).toBe(Code.InvalidArgument);
    expect(await codeOf(users().update({ userId: crypto.randomUUID(), updates: [] }))).toBe(Code.NotFound);
    expect(await codeOf(users().create({ initializers: [{ field: { case: "email", value: admin.email } }] }))).toBe(Code.AlreadyExists);
  });

  it("is refused to a user without user permissions", async () => {
    const email = freshEmail();
    await create(email);
    const s = await login(email);
    expect(await codeOf(client(UserService, s.token!.accessToken).list({}))).toBe(Code.PermissionDenied);
    expect(await codeOf(client(UserService).list({}))).toBe(Code.Unauthenticated);
  });
});
