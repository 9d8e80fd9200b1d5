import { Code, ConnectError } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as GroupService } from "../proto/gen/api/v1/group/service_pb";
import { Service as RoleService } from "../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { Service as UserService } from "../proto/gen/api/v1/user/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { codeOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const groupsApi = () => client(GroupService, admin.accessToken);
const rolesApi = () => client(RoleService, admin.accessToken);
const user = (id: string) => ({ kind: { case: "userId" as const, value: id } });

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
});

async function newUser() {
  const res = await register(freshEmail());
  return { id: res.userId, token: res.token!.accessToken };
}

describe("group.Service", () => {
  it("creates, renames, lists and deletes groups with members, carrying role assignments along", async () => {
    const { group } = await groupsApi().create({
      initializers: [
        { field: { case: "groupId", value: "backend" } },
        { field: { case: "setMetadata", value: { key: "team", value: new TextEncoder().encode("core") } } },
      ],
    });
    expect(group?.groupId).toBe("backend");
    expect(new TextDecoder().decode(group?.metadata.team)).toBe("core");

    const a = await newUser();
    const sa = await client(ServiceAccountService, admin.accessToken).create({ name: "backend-bot" });
    const saId = (await client(ServiceAccountService, admin.accessToken).list({})).serviceAccounts.find((s) => s.name === "backend-bot")!.serviceAccountId;
    await groupsApi().addMember({ groupId: "backend", memberIds: [user(a.id), { kind: { case: "serviceAccountId", value: saId } }] });
    expect(sa.clientSecret).toBeTruthy();

    const members = await groupsApi().listMembers({ groupId: "backend" });
    expect(members.total).toBe(2n);
    expect(members.members.map((m) => m.entry.case).sort()).toEqual(["serviceAccount", "user"]);
    expect((await groupsApi().get({ groupId: "backend" })).group?.numMembers).toBe(2n);

    await rolesApi().assign({ roleId: "viewer", entityId: { kind: { case: "groupId", value: "backend" } } });
    await groupsApi().update({ groupId: "backend", updates: [{ field: { case: "groupId", value: "platform" } }] });
    expect(await codeOf(groupsApi().get({ groupId: "backend" }))).toBe(Code.NotFound);
    const forMember = await groupsApi().listGroupsForMember({ memberId: user(a.id) });
    expect(forMember.groups.map((g) => g.groupId)).toEqual(["platform"]);
    expect(forMember.total).toBe(1n);
    // The role followed the rename: the member can view users through the group.
    expect((await client(UserService, a.token).list({})).total).toBeGreaterThan(0n);

    await groupsApi().delete({ groupId: "platform" });
    const left = await env.DB.prepare(
      "SELECT (SELECT COUNT(*) FROM group_members WHERE group_id = 'platform') AS members, (SELECT COUNT(*) FROM role_assignments WHERE subject_id = 'platform') AS roles",
    ).first();
    expect(left).toEqual({ members: 0, roles: 0 });
    expect(await codeOf(client(UserService, a.token).list({}))).toBe(Code.PermissionDenied);
  });

  it("validates names, refuses duplicates and unknown ids", async () => {
    for (const bad of ["", "Upper", "under_score", "-x"]) {
      expect(await codeOf(groupsApi().create({ initializers: [{ field: { case: "groupId", value: bad } }] })), bad).toBe(Code.InvalidArgument);
    }
    await groupsApi().create({ initializers: [{ field: { case: "groupId", value: "dup" } }] });
    expect(await codeOf(groupsApi().create({ initializers: [{ field: { case: "groupId", value: "dup" } }] }))).toBe(Code.AlreadyExists);
    expect(await codeOf(groupsApi().get({ groupId: "nope" }))).toBe(Code.NotFound);
    expect(await codeOf(groupsApi().addMember({ groupId: "dup", memberIds: [user(crypto.randomUUID())] }))).toBe(Code.NotFound);
    expect(await codeOf(groupsApi().removeMember({ groupId: "dup", memberId: user(admin.userId) }))).toBe(Code.NotFound);
  });

  it("pages with totals and Rig's limits", async () => {
    for (let i = 0; i < 55; i++) {
      await env.DB.prepare("INSERT INTO groups (id, created_at, updated_at) VALUES (?, 0, 0)").bind(`bulk-${String(i).padStart(2, "0")}`).run();
    }
    const all = await groupsApi().list({ search: "bulk-" });
    expect(all.total).toBe(55n);
    expect(all.groups).toHaveLength(50);
    expect((await groupsApi().list({ search: "bulk-", pagination: { limit: 5000 } })).groups).toHaveLength(50);
    const page = await groupsApi().list({ search: "bulk-", pagination: { offset: 50, limit: 10 } });
    expect(page.groups.map((g) => g.groupId)).toEqual(["bulk-50", "bulk-51", "bulk-52", "bulk-53", "bulk-54"]);
  });
});

describe("role.Service", () => {
  it("creates a custom role, grants it, and changes take effect on the next request", async () => {
    const u = await newUser();
    expect(await codeOf(client(GroupService, u.token).list({}))).toBe(Code.PermissionDenied);
    await rolesApi().create({ roleId: "group-reader", permissions: [{ action: "group:view", scope: { resource: "group/*" } }] });
    await rolesApi().assign({ roleId: "group-reader", entityId: user(u.id) });
    expect((await client(GroupService, u.token).list({})).total).toBeGreaterThanOrEqual(0n);
    await rolesApi().update({
      roleId: "group-reader",
      updates: [{ update: { case: "removePermission", value: { action: "group:view", scope: { resource: "group/*" } } } }],
    });
    expect(await codeOf(client(GroupService, u.token).list({}))).toBe(Code.PermissionDenied);
    await rolesApi().update({
      roleId: "group-reader",
      updates: [{ update: { case: "addPermission", value: { action: "group:view", scope: { resource: "group/*" } } } }],
    });
    expect((await client(GroupService, u.token).list({})).groups).toBeDefined();
    await rolesApi().revoke({ roleId: "group-reader", entityId: user(u.id) });
    expect(await codeOf(client(GroupService, u.token).list({}))).toBe(Code.PermissionDenied);
  });

  it("deletes a role with its assignments in one go", async () => {
    const u = await newUser();
    await rolesApi().create({ roleId: "temp", permissions: [{ action: "user:view" }] });
    await rolesApi().assign({ roleId: "temp", entityId: user(u.id) });
    await rolesApi().delete({ roleId: "temp" });
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM role_assignments WHERE role_id = 'temp'").first()).toEqual({ n: 0 });
    expect(await codeOf(client(UserService, u.token).list({}))).toBe(Code.PermissionDenied);
  });

  it("keeps the predefined roles", async () => {
    const ids = (await rolesApi().list({})).roles.map((r) => r.roleId);
    for (const r of ["viewer", "developer", "owner", "admin"]) {
      expect(ids).toContain(r);
      expect(await codeOf(rolesApi().delete({ roleId: r }))).toBe(Code.FailedPrecondition);
    }
    expect(
      await codeOf(rolesApi().update({ roleId: "viewer", updates: [{ update: { case: "addPermission", value: { action: "user:edit" } } }] })),
    ).toBe(Code.FailedPrecondition);
  });

  it("validates roles and permissions", async () => {
    expect(await codeOf(rolesApi().create({ roleId: "Bad_Name" }))).toBe(Code.InvalidArgument);
    expect(await codeOf(rolesApi().create({ roleId: "bad-action", permissions: [{ action: "capsule:fly" }] }))).toBe(Code.InvalidArgument);
    expect(await codeOf(rolesApi().create({ roleId: "bad-scope", permissions: [{ action: "capsule:view", scope: { resource: "no slash" } }] }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(rolesApi().create({ roleId: "viewer" }))).toBe(Code.AlreadyExists);
    expect(await codeOf(rolesApi().get({ roleId: "missing" }))).toBe(Code.NotFound);
    expect(await codeOf(rolesApi().assign({ roleId: "viewer", entityId: user(crypto.randomUUID()) }))).toBe(Code.NotFound);
    expect(await codeOf(rolesApi().assign({ roleId: "missing", entityId: user(admin.userId) }))).toBe(Code.NotFound);
  });

  it("refuses to remove the last administrator, by any route", async () => {
    expect(await codeOf(rolesApi().revoke({ roleId: "admin", entityId: user(admin.userId) }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(client(UserService, admin.accessToken).delete({ userId: admin.userId }))).toBe(Code.FailedPrecondition);

    // Admin through a group only: removing the membership or the group is refused too.
    await groupsApi().create({ initializers: [{ field: { case: "groupId", value: "admins" } }] });
    await groupsApi().addMember({ groupId: "admins", memberIds: [user(admin.userId)] });
    await rolesApi().assign({ roleId: "admin", entityId: { kind: { case: "groupId", value: "admins" } } });
    await rolesApi().revoke({ roleId: "admin", entityId: user(admin.userId) });
    expect((await client(AuthService, admin.accessToken).get({})).userId).toBe(admin.userId);
    expect(await codeOf(groupsApi().removeMember({ groupId: "admins", memberId: user(admin.userId) }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(groupsApi().delete({ groupId: "admins" }))).toBe(Code.FailedPrecondition);
    expect(await codeOf(rolesApi().revoke({ roleId: "admin", entityId: { kind: { case: "groupId", value: "admins" } } }))).toBe(
      Code.FailedPrecondition,
    );

    // With a second admin, the first can go.
    const other = await newUser();
    await rolesApi().assign({ roleId: "admin", entityId: user(other.id) });
    await groupsApi().removeMember({ groupId: "admins", memberId: user(admin.userId) });
    // No longer an admin, on the very next request; the other admin restores it.
    expect(await codeOf(rolesApi().assign({ roleId: "admin", entityId: user(admin.userId) }))).toBe(Code.PermissionDenied);
    await client(RoleService, other.token).assign({ roleId: "admin", entityId: user(admin.userId) });
    expect((await rolesApi().get({ roleId: "admin" })).role?.roleId).toBe("admin");
  });

  it("keeps an admin when two admins are revoked at the same time", async () => {
    const second = await newUser();
    await rolesApi().assign({ roleId: "admin", entityId: user(second.id) });
    const admins = async () =>
      (await env.DB.prepare("SELECT COUNT(DISTINCT admin_id) AS n FROM admin_paths").first<{ n: number }>())!.n;
    const before = await admins();
    // Revoke every admin but these two first, so that exactly these two remain.
    const others = await env.DB.prepare("SELECT DISTINCT admin_id FROM admin_paths WHERE admin_id NOT IN (?, ?)").bind(admin.userId, second.id).all<{ admin_id: string }>();
    expect(before).toBe(2 + others.results.length);
    for (const o of others.results) {
      await env.DB.prepare("DELETE FROM role_assignments WHERE role_id = 'admin' AND subject_id = ?").bind(o.admin_id).run();
      await env.DB.prepare("DELETE FROM group_members WHERE member_id = ?").bind(o.admin_id).run();
    }
    expect(await admins()).toBe(2);
    const results = await Promise.allSettled([
      rolesApi().revoke({ roleId: "admin", entityId: user(second.id) }),
      client(RoleService, second.token).revoke({ roleId: "admin", entityId: user(admin.userId) }),
    ]);
    const refused = results.filter((r) => r.status === "rejected").map((r) => ConnectError.from((r as PromiseRejectedResult).reason).code);
    expect(refused.every((c) => c === Code.FailedPrecondition || c === Code.PermissionDenied)).toBe(true);
    expect(await admins()).toBe(1);
  });
});

describe("Delete racing Assign and AddMember", () => {
  /** Rows that name a role or group that does not exist. */
  const orphans = () =>
    env.DB.prepare(
      `SELECT (SELECT COUNT(*) FROM role_assignments WHERE role_id NOT IN (SELECT id FROM roles)) AS assignments,
              (SELECT COUNT(*) FROM role_assignments WHERE subject_type = 'group' AND subject_id NOT IN (SELECT id FROM groups)) AS groupAssignments,
              (SELECT COUNT(*) FROM group_members WHERE group_id NOT IN (SELECT id FROM groups)) AS members`,
    ).first();

  it("never leaves an assignment of a deleted role, and a role created again has no old holders", async () => {
    const holder = await newUser();
    for (let round = 0; round < 20; round++) {
      await rolesApi().create({ roleId: "racing", permissions: [{ action: "capsule:view" }] });
      await Promise.allSettled([rolesApi().assign({ roleId: "racing", entityId: user(holder.id) }), rolesApi().delete({ roleId: "racing" })]);
      // Whichever won, what is left is consistent: the role is gone, and so is every assignment of it.
      expect(await orphans(), `round ${round}`).toEqual({ assignments: 0, groupAssignments: 0, members: 0 });
      const again = await rolesApi().create({ roleId: "racing", permissions: [] }).catch(() => null);
      if (again) {
        const held = await env.DB.prepare("SELECT COUNT(*) AS n FROM role_assignments WHERE role_id = 'racing'").first<{ n: number }>();
        expect(held!.n, `round ${round}: the re-created role has holders`).toBe(0);
        await rolesApi().delete({ roleId: "racing" });
      } else {
        // The assignment won and the delete lost? Delete always wins eventually: clean up for the next round.
        await rolesApi().delete({ roleId: "racing" });
      }
    }
  });

  it("never leaves a membership or role assignment of a deleted group, and a group created again is empty", async () => {
    const member = await newUser();
    await rolesApi().create({ roleId: "grouped", permissions: [{ action: "capsule:view" }] });
    for (let round = 0; round < 20; round++) {
      await groupsApi().create({ initializers: [{ field: { case: "groupId", value: "racing-group" } }] });
      await Promise.allSettled([
        groupsApi().addMember({ groupId: "racing-group", memberIds: [user(member.id)] }),
        rolesApi().assign({ roleId: "grouped", entityId: { kind: { case: "groupId", value: "racing-group" } } }),
        groupsApi().delete({ groupId: "racing-group" }),
      ]);
      expect(await orphans(), `round ${round}`).toEqual({ assignments: 0, groupAssignments: 0, members: 0 });
      const { group } = await groupsApi().create({ initializers: [{ field: { case: "groupId", value: "racing-group" } }] });
      expect(group!.numMembers, `round ${round}: the re-created group has members`).toBe(0n);
      const roles = await env.DB.prepare("SELECT COUNT(*) AS n FROM role_assignments WHERE subject_type = 'group' AND subject_id = 'racing-group'").first<{ n: number }>();
      expect(roles!.n, `round ${round}: the re-created group holds roles`).toBe(0);
      await groupsApi().delete({ groupId: "racing-group" });
    }
  });
});

describe("no privilege escalation", () => {
  /** A new user holding `roleId` (permissions are read on every request, so its token has them at once). */
  async function holding(roleId: string) {
    const u = await newUser();
    await rolesApi().assign({ roleId, entityId: user(u.id) });
    return u;
  }
  const assignments = (id: string) => env.DB.prepare("SELECT role_id FROM role_assignments WHERE subject_id = ? ORDER BY role_id").bind(id).all<{ role_id: string }>();

  it("refuses the owner assigning itself admin, and any role beyond what the granter holds", async () => {
    const owner = await holding("owner");
    const roles = client(RoleService, owner.token);
    const err = await roles.assign({ roleId: "admin", entityId: user(owner.id) }).then(() => null, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(err?.rawMessage).toMatch(/^role admin grants \* .*which this user does not hold/);
    expect((await assignments(owner.id)).results.map((r) => r.role_id)).toEqual(["owner"]);
    // Roles within its own permissions it may hand out.
    const other = await newUser();
    await roles.assign({ roleId: "developer", entityId: user(other.id) });
    expect((await assignments(other.id)).results.map((r) => r.role_id)).toEqual(["developer"]);
  });

  it("refuses a role created or edited to hold more than its author holds", async () => {
    await rolesApi().create({
      roleId: "role-maker",
      permissions: ["role:edit", "role:view", "capsule:view", "capsule:deploy"].map((action) => ({ action })),
    });
    const maker = await holding("role-maker");
    const roles = client(RoleService, maker.token);
    expect(await codeOf(roles.create({ roleId: "too-much", permissions: [{ action: "*" }] }))).toBe(Code.PermissionDenied);
    expect(await codeOf(roles.create({ roleId: "too-much", permissions: [{ action: "user:edit" }] }))).toBe(Code.PermissionDenied);
    expect(await codeOf(rolesApi().get({ roleId: "too-much" }))).toBe(Code.NotFound);
    await roles.create({ roleId: "within", permissions: [{ action: "capsule:view", scope: { project: "shop" } }] });
    expect(await codeOf(roles.update({ roleId: "within", updates: [{ update: { case: "addPermission", value: { action: "settings:edit" } } }] }))).toBe(
      Code.PermissionDenied,
    );
    await roles.update({ roleId: "within", updates: [{ update: { case: "addPermission", value: { action: "capsule:deploy" } } }] });
    expect((await rolesApi().get({ roleId: "within" })).role!.permissions.map((p) => p.action)).toEqual(["capsule:view", "capsule:deploy"]);
  });

  it("refuses adding a member to a group whose roles reach beyond the granter, and a scoped granter beyond its scope", async () => {
    const owner = await holding("owner");
    await groupsApi().create({ initializers: [{ field: { case: "groupId", value: "admin-holders" } }] });
    await rolesApi().assign({ roleId: "admin", entityId: { kind: { case: "groupId", value: "admin-holders" } } });
    const groups = client(GroupService, owner.token);
    expect(await codeOf(groups.addMember({ groupId: "admin-holders", memberIds: [user(owner.id)] }))).toBe(Code.PermissionDenied);
    expect((await groupsApi().get({ groupId: "admin-holders" })).group!.numMembers).toBe(0n);
    await groupsApi().create({ initializers: [{ field: { case: "groupId", value: "viewer-holders" } }] });
    await rolesApi().assign({ roleId: "viewer", entityId: { kind: { case: "groupId", value: "viewer-holders" } } });
    await groups.addMember({ groupId: "viewer-holders", memberIds: [user(owner.id)] });

    // Scoped: role:assign and capsule:view on project shop only.
    await rolesApi().create({
      roleId: "shop-lead",
      permissions: [{ action: "role:assign" }, { action: "capsule:view", scope: { project: "shop" } }],
    });
    await rolesApi().create({ roleId: "shop-viewer", permissions: [{ action: "capsule:view", scope: { project: "shop" } }] });
    await rolesApi().create({ roleId: "all-viewer", permissions: [{ action: "capsule:view" }] });
    const lead = await holding("shop-lead");
    const other = await newUser();
    await client(RoleService, lead.token).assign({ roleId: "shop-viewer", entityId: user(other.id) });
    expect(await codeOf(client(RoleService, lead.token).assign({ roleId: "all-viewer", entityId: user(other.id) }))).toBe(Code.PermissionDenied);
    expect((await assignments(other.id)).results.map((r) => r.role_id)).toEqual(["shop-viewer"]);
  });
});
