/**
 * The authorization matrix: every routed RPC × every kind of caller → allowed or refused,
 * as the access rules say. "Allowed" means the call got past the check (the handler may
 * still answer not_found, invalid_argument or unimplemented); refused means
 * unauthenticated or permission_denied.
 */
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as AuthService } from "../proto/gen/api/v1/authentication/service_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as GroupService } from "../proto/gen/api/v1/group/service_pb";
import { Service as RoleService } from "../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../proto/gen/api/v1/service_account/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { type Action, actions } from "../workers/core/actions";
import { services } from "../workers/services";
import type { Rule } from "../workers/services/registry";
import { codeOf } from "./helpers/errors";
import { client, workerFetch } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

// What each predefined role grants, written out here independently of the seed migration.
const viewer: Action[] = actions.filter((a) => a.endsWith(":view"));
const developer: Action[] = [
  ...viewer,
  "image:add",
  "capsule:create",
  "capsule:edit",
  "capsule:deploy",
  "capsule:execute",
  "capsule:restartinstance",
  "capsule:abortrollout",
  "environment:edit:ephemeral",
];
const owner: Action[] = [
  ...developer,
  "project:edit",
  "environment:edit",
  "capsule:delete",
  "capsule:stoprollout",
  "image:delete",
  "group:edit",
  "serviceaccount:edit",
  "role:assign",
  "role:retract",
];

type Caller = "anonymous" | "viewer" | "developer" | "owner" | "admin" | "alpha-only" | "service-account" | "group-member";
const grants: Record<Caller, (action: Action, rule: Rule) => boolean> = {
  anonymous: () => false,
  viewer: (a) => viewer.includes(a),
  developer: (a) => developer.includes(a),
  owner: (a) => owner.includes(a),
  admin: () => true,
  // Every action, but only in project "alpha": requests that name no project are beyond it,
  // except lists that show only what the caller may see.
  "alpha-only": (_a, rule) => "action" in rule && rule.scope === "any",
  // Service accounts start with no permissions.
  "service-account": () => false,
  // Holds `developer` through its group.
  "group-member": (a) => developer.includes(a),
};

function expectedAllowed(rule: Rule, caller: Caller): boolean {
  if ("public" in rule) return true;
  if (caller === "anonymous") return false;
  if ("authenticated" in rule) return true;
  return grants[caller](rule.action, rule);
}

const tokens = {} as Record<Caller, string | undefined>;
const user = (id: string) => ({ kind: { case: "userId" as const, value: id } });

beforeAll(async () => {
  const admin = await fileAdmin();
  tokens.admin = admin.accessToken;
  tokens.anonymous = undefined;
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
  const roles = client(RoleService, admin.accessToken);
  const newUser = async () => {
    const r = await register(freshEmail());
    return { id: r.userId, token: r.token!.accessToken };
  };
  for (const role of ["viewer", "developer", "owner"] as const) {
    const u = await newUser();
    await roles.assign({ roleId: role, entityId: user(u.id) });
    tokens[role] = u.token;
  }
  await roles.create({ roleId: "alpha-only", permissions: [{ action: "*", scope: { project: "alpha", environment: "*", resource: "*" } }] });
  const alpha = await newUser();
  await roles.assign({ roleId: "alpha-only", entityId: user(alpha.id) });
  tokens["alpha-only"] = alpha.token;

  const sa = await client(ServiceAccountService, admin.accessToken).create({ name: "matrix-bot" });
  const saLogin = await client(AuthService).login({ method: { case: "clientCredentials", value: { clientId: sa.clientId, clientSecret: sa.clientSecret } } });
  tokens["service-account"] = saLogin.token!.accessToken;

  await client(GroupService, admin.accessToken).create({ initializers: [{ field: { case: "groupId", value: "devs" } }] });
  const member = await newUser();
  await client(GroupService, admin.accessToken).addMember({ groupId: "devs", memberIds: [user(member.id)] });
  await roles.assign({ roleId: "developer", entityId: { kind: { case: "groupId", value: "devs" } } });
  tokens["group-member"] = member.token;
});

/** Calls an RPC with an empty request, as raw Connect, and tells whether the check let it through. */
async function passes(typeName: string, method: { name: string; methodKind: string }, token?: string): Promise<{ allowed: boolean; answer: string }> {
  const unary = method.methodKind === "unary";
  const prefix = typeName === "proto.SkaffoldService" ? "/environments/any/skaffold" : "";
  const res = await workerFetch(`http://edgeplane.test${prefix}/${typeName}/${method.name}`, {
    method: "POST",
    headers: {
      "content-type": unary ? "application/json" : "application/connect+json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: unary ? "{}" : new Uint8Array([0, 0, 0, 0, 2, 0x7b, 0x7d]),
  });
  const answer = await res.text();
  return { allowed: !/"code":"(unauthenticated|permission_denied)"/.test(answer), answer: answer.slice(0, 200) };
}

// Logout and self-deletion end the caller's session or account; the authentication tests cover them.
const skipped = new Set(["api.v1.authentication.Service/Logout", "api.v1.authentication.Service/Delete"]);

describe("authorization matrix", () => {
  const callers = Object.keys(grants) as Caller[];
  const rpcs = services.flatMap((s) =>
    s.service.methods
      .filter((m) => !skipped.has(`${s.service.typeName}/${m.name}`))
      .map((m) => ({ typeName: s.service.typeName, method: m, rule: s.rules[m.localName]! })),
  );

  it("covers every routed RPC with an access rule", () => {
    for (const s of services) for (const m of s.service.methods) expect(s.rules[m.localName], `${s.service.typeName}/${m.name}`).toBeDefined();
    expect(rpcs.length).toBeGreaterThan(120);
  });

  for (const caller of callers) {
    it(`allows and refuses exactly what the table says for ${caller}`, async () => {
      const mismatches: string[] = [];
      for (const { typeName, method, rule } of rpcs) {
        const { allowed, answer } = await passes(typeName, method, tokens[caller]);
        const expected = expectedAllowed(rule, caller);
        if (allowed !== expected) mismatches.push(`${typeName}/${method.name}: expected ${expected ? "allowed" : "refused"}, got ${answer}`);
      }
      expect(mismatches).toEqual([]);
    });
  }
});

describe("scopes", () => {

  it("a role scoped to project A cannot read project B", async () => {
    const capsules = client(CapsuleService, tokens["alpha-only"]);
    expect(await codeOf(capsules.get({ projectId: "alpha", capsuleId: "web" }))).toBe(Code.NotFound);
    expect(await codeOf(capsules.get({ projectId: "beta", capsuleId: "web" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(capsules.list({ projectId: "beta" }))).toBe(Code.PermissionDenied);
  });

  it("a role scoped to environment prod cannot deploy to staging", async () => {
    const admin = await fileAdmin();
    await client(RoleService, admin.accessToken).create({
      roleId: "prod-deployer",
      permissions: [{ action: "capsule:deploy", scope: { project: "*", environment: "prod", resource: "capsule/*" } }],
    });
    const u = await register(freshEmail("prod"));
    await client(RoleService, admin.accessToken).assign({ roleId: "prod-deployer", entityId: user(u.userId) });
    const capsules = client(CapsuleService, u.token!.accessToken);
    // Allowed through to the handler, which finds no such capsule.
    expect(await codeOf(capsules.deploy({ projectId: "shop", environmentId: "prod", capsuleId: "web" }))).toBe(Code.NotFound);
    expect(await codeOf(capsules.deploy({ projectId: "shop", environmentId: "staging", capsuleId: "web" }))).toBe(Code.PermissionDenied);
  });

  it("a resource-scoped grant covers that resource only", async () => {
    const admin = await fileAdmin();
    await client(RoleService, admin.accessToken).create({
      roleId: "web-only",
      permissions: [{ action: "capsule:view", scope: { resource: "capsule/web", project: "*", environment: "*" } }],
    });
    const u = await register(freshEmail("web"));
    await client(RoleService, admin.accessToken).assign({ roleId: "web-only", entityId: user(u.userId) });
    const capsules = client(CapsuleService, u.token!.accessToken);
    expect(await codeOf(capsules.get({ projectId: "shop", capsuleId: "web" }))).toBe(Code.NotFound);
    expect(await codeOf(capsules.get({ projectId: "shop", capsuleId: "db" }))).toBe(Code.PermissionDenied);
  });
});
