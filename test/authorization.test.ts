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
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as GroupService } from "../proto/gen/api/v1/group/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
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

  it("RPCs naming a rollout are authorized in the rollout's own environment", async () => {
    const admin = await fileAdmin();
    await client(ProjectService, admin.accessToken).create({ projectId: "fleet" });
    for (const environmentId of ["fleet-dev", "fleet-prod"]) {
      await client(EnvironmentService, admin.accessToken).create({ environmentId, initializers: [{ field: { case: "addProject", value: "fleet" } }] });
    }
    const admins = client(CapsuleService, admin.accessToken);
    await admins.create({ projectId: "fleet", name: "web" });
    const { rolloutId } = await admins.deploy({
      projectId: "fleet",
      capsuleId: "web",
      environmentId: "fleet-prod",
      changes: [{ field: { case: "addImage", value: { image: "nginx:1.27" } } }],
    });
    /** A user holding what an operator of one environment needs there. */
    const operatorOf = async (environmentId: string) => {
      const roleId = `${environmentId}-operator`;
      const scope = { project: "*", environment: environmentId, resource: "capsule/*" };
      await client(RoleService, admin.accessToken).create({
        roleId,
        permissions: ["capsule:view", "capsule:abortrollout", "capsule:stoprollout"].map((action) => ({ action, scope })),
      });
      const u = await register(freshEmail(environmentId));
      await client(RoleService, admin.accessToken).assign({ roleId, entityId: user(u.userId) });
      return client(CapsuleService, u.token!.accessToken);
    };
    const dev = await operatorOf("fleet-dev");
    const prod = await operatorOf("fleet-prod");
    const named = { projectId: "fleet", capsuleId: "web", rolloutId };

    // Naming its own environment does not take a caller into another environment's rollout.
    expect(await codeOf(dev.listEvents({ ...named, environmentId: "fleet-dev" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(dev.listEvents(named))).toBe(Code.PermissionDenied);
    expect(await codeOf(dev.getRollout(named))).toBe(Code.PermissionDenied);
    expect(await codeOf(dev.abortRollout(named))).toBe(Code.PermissionDenied);
    expect(await codeOf(dev.stopRollout(named))).toBe(Code.PermissionDenied);

    // An operator of the rollout's environment reaches it, though GetRollout, Abort and Stop name none.
    expect((await prod.getRollout(named)).rollout?.rolloutId).toBe(rolloutId);
    expect((await prod.listEvents({ ...named, environmentId: "fleet-prod" })).events.length).toBeGreaterThan(0);
    expect((await prod.listEvents({ ...named, environmentId: "fleet-dev" })).events.length).toBeGreaterThan(0);
    await prod.abortRollout(named);
    // Past the check: an aborted rollout has nothing left to stop.
    expect(await codeOf(prod.stopRollout(named))).toBe(Code.FailedPrecondition);
    // A rollout never started keeps the scope the request names: no environment means all of
    // them, beyond this operator; its own environment gets the handler's not_found.
    expect(await codeOf(prod.getRollout({ ...named, rolloutId: 99n }))).toBe(Code.PermissionDenied);
    expect(await codeOf(prod.listEvents({ ...named, rolloutId: 99n, environmentId: "fleet-prod" }))).toBe(Code.NotFound);
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

/**
 * Every streaming RPC, called by a role scoped to one project and one environment: allowed
 * (through to the handler, which may answer not_found) where the request names its own
 * project and environment, refused elsewhere. Calls are raw Connect streams, as any Connect
 * client sends them: one enveloped JSON message, the answer's end-of-stream carries the error.
 */
describe("streaming RPCs with scoped roles", () => {
  const OWN_ENV = "f3d8a0e2-4b5c-4d6e-8f90-0a1b2c3d4e5f";
  const OTHER_ENV = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9";
  let scopedToken: string;

  beforeAll(async () => {
    const admin = await fileAdmin();
    // Capsules of project shop in one environment, and that environment itself (which names no project).
    const shop = { project: "shop", environment: OWN_ENV, resource: "*" };
    await client(RoleService, admin.accessToken).create({
      roleId: "shop-in-one-environment",
      permissions: [
        { action: "capsule:view", scope: shop },
        { action: "capsule:execute", scope: shop },
        { action: "environment:view", scope: { project: "*", environment: OWN_ENV, resource: "*" } },
      ],
    });
    const u = await register(freshEmail("scoped"));
    await client(RoleService, admin.accessToken).assign({ roleId: "shop-in-one-environment", entityId: user(u.userId) });
    scopedToken = u.token!.accessToken;
  });

  /** The Connect error code a streaming call ends with ("" when it ends well). */
  async function streamCode(path: string, message: object): Promise<string> {
    const json = new TextEncoder().encode(JSON.stringify(message));
    const body = new Uint8Array(5 + json.length);
    new DataView(body.buffer).setUint32(1, json.length);
    body.set(json, 5);
    const res = await workerFetch(`http://edgeplane.test${path}`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${scopedToken}` },
      body,
    });
    const bytes = new Uint8Array(await res.arrayBuffer());
    for (let at = 0; at + 5 <= bytes.length; ) {
      const len = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
      if (bytes[at]! & 2) return (JSON.parse(new TextDecoder().decode(bytes.subarray(at + 5, at + 5 + len))) as { error?: { code: string } }).error?.code ?? "";
      at += 5 + len;
    }
    throw new Error(`${path}: no end of stream in the answer (${res.status})`);
  }

  const skaffold = (environmentId: string, method: string) => `/environments/${environmentId}/skaffold/proto.SkaffoldService/${method}`;
  const logs = (projectId: string, environmentId: string) => ({ projectId, environmentId, capsuleId: "web", follow: true });

  /** Each streaming RPC: its own scope, and requests beyond it. */
  const cases: Record<string, { path: (env: string) => string; own: object; elsewhere: { env: string; message: object }[] }> = {
    "api.v1.capsule.Service/Logs": {
      path: () => "/api.v1.capsule.Service/Logs",
      own: logs("shop", OWN_ENV),
      elsewhere: [
        { env: OWN_ENV, message: logs("other", OWN_ENV) },
        { env: OWN_ENV, message: logs("shop", OTHER_ENV) },
        { env: OWN_ENV, message: { projectId: "shop", capsuleId: "web" } },
      ],
    },
    "gitpod.v1.EventService/WatchEvents": {
      path: () => "/gitpod.v1.EventService/WatchEvents",
      own: { environmentId: OWN_ENV },
      elsewhere: [{ env: OWN_ENV, message: { environmentId: OTHER_ENV } }],
    },
    "proto.SkaffoldService/Events": {
      path: (env) => skaffold(env, "Events"),
      own: {},
      elsewhere: [{ env: OTHER_ENV, message: {} }],
    },
    "proto.SkaffoldService/EventLog": {
      path: (env) => skaffold(env, "EventLog"),
      own: {},
      elsewhere: [{ env: OTHER_ENV, message: {} }],
    },
  };

  it("checks every streaming RPC", () => {
    const streaming = services.flatMap((s) => s.service.methods.filter((m) => m.methodKind !== "unary").map((m) => `${s.service.typeName}/${m.name}`));
    // Execute is served over a WebSocket: its own test below.
    expect(streaming.filter((p) => p !== "api.v1.capsule.Service/Execute").sort()).toEqual(Object.keys(cases).sort());
  });

  for (const [rpc, c] of Object.entries(cases)) {
    it(`${rpc}: allowed in its own project and environment, refused elsewhere`, async () => {
      // Through the check to the handler, which finds no such capsule or environment.
      expect(await streamCode(c.path(OWN_ENV), c.own)).toBe("not_found");
      for (const e of c.elsewhere) expect(await streamCode(c.path(e.env), e.message), JSON.stringify(e)).toBe("permission_denied");
    });
  }

  it("api.v1.capsule.Service/Execute: the RPC points any holder of capsule:execute at its WebSocket, whose ticket is scoped", async () => {
    const start = { projectId: "shop", start: { capsuleId: "web", instanceId: "web-1-0", command: "sh" } };
    expect(await streamCode("/api.v1.capsule.Service/Execute", start)).toBe("unimplemented");
    const ticket = (environmentId: string, projectId: string) =>
      workerFetch(`http://edgeplane.test/environments/${environmentId}/exec/tickets`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${scopedToken}` },
        body: JSON.stringify({ ...start.start, projectId }),
      }).then(async (r) => ((await r.json()) as { code: string }).code);
    expect(await ticket(OWN_ENV, "shop")).toBe("not_found");
    expect(await ticket(OTHER_ENV, "shop")).toBe("permission_denied");
    expect(await ticket(OWN_ENV, "other")).toBe("permission_denied");
  });
});
