import { Code } from "@connectrpc/connect";
import { env, runInDurableObject } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as EnvironmentService } from "../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import type { EnvironmentDO } from "../durable-objects/environment/environment";
import { errorOf } from "./helpers/errors";
import { baseUrl, client, workerFetch } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const environments = (token = admin.accessToken) => client(EnvironmentService, token);

async function insertProject(id: string) {
  await env.DB.prepare(
    "INSERT INTO projects (id, name, installation_id, public_key, private_key, created_at, updated_at) VALUES (?, ?, 'test', 'pk', 'sk', 0, 0)",
  )
    .bind(id, id)
    .run();
}

/** A user holding `roleId` only, through a role assignment written straight to D1. */
async function userWithRole(roleId: string): Promise<string> {
  const res = await register(freshEmail(roleId));
  await env.DB.prepare("INSERT INTO role_assignments (role_id, subject_type, subject_id, created_at) VALUES (?, 'user', ?, ?)")
    .bind(roleId, res.userId, Date.now())
    .run();
  return res.token!.accessToken;
}

const listAll = async (req: { excludeEphemeral?: boolean; projectFilter?: string } = {}, token?: string) =>
  (await environments(token).list({ ...req, pagination: { limit: 1000 } })).environments;

const tablesOf = (state: DurableObjectState) =>
  state.storage.sql
    .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'")
    .toArray()
    .map((r) => r.name);

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({
    settings: [
      { field: { case: "allowRegister", value: true } },
      { field: { case: "passwordHashing", value: { method: { case: "bcrypt", value: { cost: 4 } } } } },
    ],
  });
  for (const p of ["proj-a", "proj-b"]) await insertProject(p);
});

describe("environment.Service Create", () => {
  it("creates an environment with Rig's defaults and initializes its object", async () => {
    await environments().create({ environmentId: "staging" });
    const staging = (await listAll()).find((e) => e.environmentId === "staging")!;
    expect(staging).toMatchObject({
      clusterId: "local",
      namespaceTemplate: "{{ .Project.Name }}",
      default: false,
      ephemeral: false,
      // The specification's environments have no projects: every project may deploy to it.
      global: true,
      activeProjects: [],
      operatorVersion: "",
    });
    expect((await environments().list({})).platformVersion).toBe("0.1.0");

    const stub = env.ENVIRONMENTS.getByName("staging");
    await runInDurableObject(stub, async (obj: EnvironmentDO) => {
      expect(obj.identity()).toMatchObject({ environmentId: "staging", ephemeral: false });
      const events = await obj.events(0);
      expect(events.map((e) => [e.type, e.data])).toEqual([["environment.created", { environmentId: "staging", ephemeral: false }]]);
    });
  });

  it("validates the environment id and refuses duplicates", async () => {
    for (const environmentId of ["", "Upper", "has_underscore", "-dash", "dash-", "x".repeat(64), "dot.ted"]) {
      const err = await errorOf(environments().create({ environmentId }));
      expect(err.code, environmentId).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("environment_id");
    }
    await environments().create({ environmentId: "twice" });
    expect((await errorOf(environments().create({ environmentId: "twice", ephemeral: true }))).code).toBe(Code.AlreadyExists);
    // The duplicate did not touch the first environment's object.
    const events = await runInDurableObject(env.ENVIRONMENTS.getByName("twice"), (obj: EnvironmentDO) => obj.events(0));
    expect(events).toHaveLength(1);
  });

  it("checks the cluster", async () => {
    await environments().create({ environmentId: "on-local", clusterId: "local" });
    const err = await errorOf(environments().create({ environmentId: "on-mars", clusterId: "mars" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("cluster mars");
    expect((await listAll()).some((e) => e.environmentId === "on-mars")).toBe(false);
  });

  it("validates the namespace template", async () => {
    const bad = [
      "{{ .Project.Id }}",
      "{{ .Project.Name",
      "NS-{{ .Project.Name }}",
      '{{ printf "x" }}',
      "{{ .Project.Name }}_{{ .Environment.Name }}",
      "{{ .Project.Name }}-{{ .Project.Name }}-{{ .Project.Name }}-{{ .Project.Name }}-{{ .Project.Name }}-{{ .Project.Name }}-{{ .Project.Name }}",
    ];
    for (const namespaceTemplate of bad) {
      const err = await errorOf(environments().create({ environmentId: "tmpl", namespaceTemplate }));
      expect(err.code, namespaceTemplate).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("namespace_template");
    }
    await environments().create({ environmentId: "tmpl", namespaceTemplate: "{{.Environment.Name}}-{{ .Project.Name }}" });
    await environments().create({ environmentId: "tmpl-trim", namespaceTemplate: "x-  {{- .Project.Name -}}  " });
  });

  it("applies initializers and checks their projects", async () => {
    const err = await errorOf(environments().create({ environmentId: "init-bad", initializers: [{ field: { case: "addProject", value: "no-such-project" } }] }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("project no-such-project");
    expect((await listAll()).some((e) => e.environmentId === "init-bad")).toBe(false);

    await environments().create({
      environmentId: "init-good",
      initializers: [
        { field: { case: "addProject", value: "proj-b" } },
        { field: { case: "addProject", value: "proj-a" } },
        { field: { case: "removeProject", value: "proj-b" } },
        { field: { case: "setGlobal", value: true } },
      ],
    });
    const created = (await listAll()).find((e) => e.environmentId === "init-good")!;
    expect(created.activeProjects).toEqual(["proj-a"]);
    expect(created.global).toBe(true);
  });
});

describe("environment.Service Update", () => {
  it("keeps at most one default environment", async () => {
    await environments().create({ environmentId: "def-1", initializers: [{ field: { case: "default", value: true } }] });
    await environments().create({ environmentId: "def-2" });
    const defaults = async () => (await listAll()).filter((e) => e.default).map((e) => e.environmentId);
    expect(await defaults()).toEqual(["def-1"]);
    await environments().update({ environmentId: "def-2", updates: [{ field: { case: "default", value: true } }] });
    expect(await defaults()).toEqual(["def-2"]);
    await environments().create({ environmentId: "def-3", initializers: [{ field: { case: "default", value: true } }] });
    expect(await defaults()).toEqual(["def-3"]);
    await environments().update({ environmentId: "def-3", updates: [{ field: { case: "default", value: false } }] });
    expect(await defaults()).toEqual([]);
  });

  it("adds and removes projects and sets global", async () => {
    await environments().create({ environmentId: "upd" });
    await environments().update({
      environmentId: "upd",
      updates: [{ field: { case: "addProject", value: "proj-a" } }, { field: { case: "addProject", value: "proj-b" } }],
    });
    const get = async () => (await listAll()).find((e) => e.environmentId === "upd")!;
    expect((await get()).activeProjects).toEqual(["proj-a", "proj-b"]);
    await environments().update({ environmentId: "upd", updates: [{ field: { case: "removeProject", value: "proj-a" } }] });
    expect((await get()).activeProjects).toEqual(["proj-b"]);

    const notActive = await errorOf(environments().update({ environmentId: "upd", updates: [{ field: { case: "removeProject", value: "proj-a" } }] }));
    expect(notActive.code).toBe(Code.NotFound);
    const unknown = await errorOf(environments().update({ environmentId: "upd", updates: [{ field: { case: "addProject", value: "ghost" } }] }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toContain("project ghost");

    await environments().update({ environmentId: "upd", updates: [{ field: { case: "setGlobal", value: true } }] });
    expect((await get()).global).toBe(true);
    const whileGlobal = await errorOf(environments().update({ environmentId: "upd", updates: [{ field: { case: "removeProject", value: "proj-b" } }] }));
    expect(whileGlobal.code).toBe(Code.FailedPrecondition);
    // A refused update changes nothing, even the updates before the refused one.
    const partial = await errorOf(
      environments().update({
        environmentId: "upd",
        updates: [{ field: { case: "setGlobal", value: false } }, { field: { case: "addProject", value: "ghost" } }],
      }),
    );
    expect(partial.code).toBe(Code.NotFound);
    expect((await get()).global).toBe(true);
  });

  it("refuses unknown environments and empty updates", async () => {
    const err = await errorOf(environments().update({ environmentId: "nowhere", updates: [{ field: { case: "default", value: true } }] }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toContain("environment nowhere");
    await environments().create({ environmentId: "upd-empty" });
    const empty = await errorOf(environments().update({ environmentId: "upd-empty", updates: [{}] }));
    expect(empty.code).toBe(Code.InvalidArgument);
    expect(empty.rawMessage).toContain("updates[0]");
  });
});

describe("environment.Service List", () => {
  it("filters by project and leaves out ephemeral environments when asked", async () => {
    await environments().create({ environmentId: "filt-a", initializers: [{ field: { case: "addProject", value: "proj-a" } }] });
    await environments().create({ environmentId: "filt-b", initializers: [{ field: { case: "addProject", value: "proj-b" } }] });
    await environments().create({ environmentId: "filt-global", initializers: [{ field: { case: "setGlobal", value: true } }] });
    await environments().create({ environmentId: "filt-eph", ephemeral: true, initializers: [{ field: { case: "addProject", value: "proj-a" } }] });
    const ids = (list: { environmentId: string }[]) => list.map((e) => e.environmentId).filter((id) => id.startsWith("filt-"));

    expect(ids(await listAll())).toEqual(["filt-a", "filt-b", "filt-eph", "filt-global"]);
    expect(ids(await listAll({ projectFilter: "proj-a" }))).toEqual(["filt-a", "filt-eph", "filt-global"]);
    expect(ids(await listAll({ projectFilter: "proj-b" }))).toEqual(["filt-b", "filt-global"]);
    expect(ids(await listAll({ projectFilter: "proj-a", excludeEphemeral: true }))).toEqual(["filt-a", "filt-global"]);
    expect((await listAll({ excludeEphemeral: true })).every((e) => !e.ephemeral)).toBe(true);
    expect((await listAll()).find((e) => e.environmentId === "filt-eph")?.ephemeral).toBe(true);
    expect((await errorOf(listAll({ projectFilter: "ghost" }))).code).toBe(Code.NotFound);
  });

  it("pages with Rig's limits: 0 or above 1000 means 50", async () => {
    const now = Date.now();
    await env.DB.batch(
      Array.from({ length: 60 }, (_, i) =>
        env.DB.prepare("INSERT INTO environments (id, cluster_id, namespace_template, created_at, updated_at) VALUES (?, 'local', '{{ .Project.Name }}', ?, ?)").bind(
          `page-${String(i).padStart(2, "0")}`,
          now,
          now,
        ),
      ),
    );
    const all = (await listAll()).map((e) => e.environmentId);
    expect(all.length).toBeGreaterThanOrEqual(60);
    expect(all).toEqual([...all].sort());
    for (const limit of [0, 1001, 5000]) {
      expect((await environments().list({ pagination: { limit } })).environments, String(limit)).toHaveLength(50);
    }
    expect((await environments().list({})).environments).toHaveLength(50);
    const page = await environments().list({ pagination: { offset: 2, limit: 3 } });
    expect(page.environments.map((e) => e.environmentId)).toEqual(all.slice(2, 5));
    const reversed = await environments().list({ pagination: { limit: 2, descending: true } });
    expect(reversed.environments.map((e) => e.environmentId)).toEqual([...all].reverse().slice(0, 2));
  });

  it("shows only the environments the caller may view", async () => {
    await environments().create({ environmentId: "seen" });
    await environments().create({ environmentId: "unseen" });
    const now = Date.now();
    await env.DB.prepare("INSERT INTO roles (id, permissions, predefined, created_at, updated_at) VALUES ('seen-viewer', ?, 0, ?, ?)")
      .bind(JSON.stringify([{ action: "environment:view", scope: { resource: "environment/seen", environment: "seen" } }]), now, now)
      .run();
    const token = await userWithRole("seen-viewer");
    expect((await listAll({}, token)).map((e) => e.environmentId)).toEqual(["seen"]);
    await insertProject("seen-proj");
    const ns = await environments(token).getNamespaces({ projectEnvs: [{ projectId: "seen-proj", environmentId: "seen" }] });
    expect(ns.namespaces[0]?.namespace).toBe("seen-proj");
    const err = await errorOf(environments(token).getNamespaces({ projectEnvs: [{ projectId: "seen-proj", environmentId: "unseen" }] }));
    expect(err.code).toBe(Code.PermissionDenied);

    const nobody = (await register(freshEmail("nobody"))).token!.accessToken;
    expect((await errorOf(environments(nobody).list({}))).code).toBe(Code.PermissionDenied);
  });
});

describe("environment.Service GetNamespaces", () => {
  it("renders each environment's template for each project", async () => {
    await environments().create({ environmentId: "ns-plain" });
    await environments().create({ environmentId: "ns-both", namespaceTemplate: "{{ .Environment.Name }}-{{ .Project.Name }}" });
    const res = await environments().getNamespaces({
      projectEnvs: [
        { projectId: "proj-a", environmentId: "ns-both" },
        { projectId: "proj-a", environmentId: "ns-plain" },
        { projectId: "proj-b", environmentId: "ns-both" },
      ],
    });
    expect(res.namespaces.map((n) => [n.projectId, n.environmentId, n.namespace])).toEqual([
      ["proj-a", "ns-both", "ns-both-proj-a"],
      ["proj-a", "ns-plain", "proj-a"],
      ["proj-b", "ns-both", "ns-both-proj-b"],
    ]);
    expect((await environments().getNamespaces({})).namespaces).toEqual([]);
  });

  it("names the unknown project or environment", async () => {
    const env1 = await errorOf(environments().getNamespaces({ projectEnvs: [{ projectId: "proj-a", environmentId: "ghost-env" }] }));
    expect(env1.code).toBe(Code.NotFound);
    expect(env1.rawMessage).toContain("environment ghost-env");
    const proj = await errorOf(environments().getNamespaces({ projectEnvs: [{ projectId: "ghost-proj", environmentId: "ns-plain" }] }));
    expect(proj.code).toBe(Code.NotFound);
    expect(proj.rawMessage).toContain("project ghost-proj");
  });

  it("refuses a namespace that overflows a DNS label", async () => {
    const long = "p".repeat(60);
    await insertProject(long);
    const err = await errorOf(environments().getNamespaces({ projectEnvs: [{ projectId: long, environmentId: "ns-both" }] }));
    expect(err.code).toBe(Code.FailedPrecondition);
  });
});

describe("environment.Service Delete", () => {
  it("refuses while the object holds a capsule, unless forced, and leaves nothing behind", async () => {
    await environments().create({ environmentId: "doomed", initializers: [{ field: { case: "addProject", value: "proj-a" } }] });
    const stub = env.ENVIRONMENTS.getByName("doomed");
    await runInDurableObject(stub, (_obj: EnvironmentDO, state) => {
      state.storage.sql.exec(
        "INSERT INTO capsule_state (project_id, capsule_id, current_rollout_id, desired_rollout_id, updated_at) VALUES ('proj-a', 'web', 1, 1, ?)",
        Date.now(),
      );
    });

    const refused = await errorOf(environments().delete({ environmentId: "doomed" }));
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.rawMessage).toContain("proj-a/web");
    expect((await listAll()).some((e) => e.environmentId === "doomed")).toBe(true);

    await environments().delete({ environmentId: "doomed", force: true });
    expect((await listAll()).some((e) => e.environmentId === "doomed")).toBe(false);
    const links = await env.DB.prepare("SELECT COUNT(*) AS n FROM environment_projects WHERE environment_id = 'doomed'").first<{ n: number }>();
    expect(links?.n).toBe(0);

    await runInDurableObject(stub, async (obj: EnvironmentDO, state) => {
      expect(tablesOf(state)).toEqual([]);
      expect(await state.storage.getAlarm()).toBeNull();
      // A later call starts from empty storage, not from the deleted environment.
      expect(await obj.events(0)).toEqual([]);
      expect(obj.identity()).toBeNull();
      expect(obj.rollouts().deployed()).toEqual([]);
    });

    // The name is free again, and its new object starts over.
    await environments().create({ environmentId: "doomed", ephemeral: true });
    await runInDurableObject(stub, async (obj: EnvironmentDO) => {
      expect((await obj.events(0)).map((e) => e.data)).toEqual([{ environmentId: "doomed", ephemeral: true }]);
    });
  });

  it("deletes an empty environment without force and refuses unknown ones", async () => {
    await environments().create({ environmentId: "empty" });
    await environments().delete({ environmentId: "empty" });
    expect((await listAll()).some((e) => e.environmentId === "empty")).toBe(false);
    const err = await errorOf(environments().delete({ environmentId: "empty" }));
    expect(err.code).toBe(Code.NotFound);
  });
});

describe("ephemeral environments", () => {
  let developer: string;
  beforeAll(async () => {
    developer = await userWithRole("developer");
  });

  it("may be created by a developer, who cannot create other environments", async () => {
    await environments(developer).create({ environmentId: "dev-eph", ephemeral: true, initializers: [{ field: { case: "addProject", value: "proj-a" } }] });
    expect((await listAll({}, developer)).find((e) => e.environmentId === "dev-eph")?.ephemeral).toBe(true);

    const fixed = await errorOf(environments(developer).create({ environmentId: "dev-fixed" }));
    expect(fixed.code).toBe(Code.PermissionDenied);
    const asDefault = await errorOf(
      environments(developer).create({ environmentId: "dev-default", ephemeral: true, initializers: [{ field: { case: "default", value: true } }] }),
    );
    expect(asDefault.code).toBe(Code.PermissionDenied);
    expect((await listAll()).map((e) => e.environmentId)).not.toContain("dev-fixed");
    expect((await listAll()).map((e) => e.environmentId)).not.toContain("dev-default");
    expect((await errorOf(environments(developer).delete({ environmentId: "dev-eph" }))).code).toBe(Code.PermissionDenied);
  });

  it("are refused to viewers", async () => {
    const viewer = await userWithRole("viewer");
    expect((await errorOf(environments(viewer).create({ environmentId: "viewer-eph", ephemeral: true }))).code).toBe(Code.PermissionDenied);
  });
});

describe("environment activation: the specification's API and Rig v1.9's", () => {
  /** An RPC as a client of the specification sends it: JSON with only the specification's fields. */
  const rpc = async (path: string, body: object) => {
    const res = await workerFetch(`${baseUrl}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${admin.accessToken}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const nginx = [{ field: { case: "addImage" as const, value: { image: "nginx:1.27" } } }];
  const deployTo = (environmentId: string, projectId: string) =>
    client(CapsuleService, admin.accessToken).deploy({ projectId, environmentId, capsuleId: "web", changes: nginx });

  beforeAll(async () => {
    for (const projectId of ["act-shop", "act-blog"]) {
      await client(ProjectService, admin.accessToken).create({ projectId });
      await client(CapsuleService, admin.accessToken).create({ projectId, name: "web" });
    }
  });

  it("deploys to an environment created without projects, in JSON", async () => {
    expect(await rpc("api.v1.project.Service/Create", { projectId: "act-json" })).toMatchObject({ status: 200 });
    expect(await rpc("api.v1.environment.Service/Create", { environmentId: "act-json-prod", clusterId: "local" })).toEqual({ status: 200, body: {} });
    expect(await rpc("api.v1.capsule.Service/Create", { projectId: "act-json", name: "web" })).toEqual({ status: 200, body: { capsuleId: "web" } });
    const deployed = await rpc("api.v1.capsule.Service/Deploy", {
      projectId: "act-json",
      environmentId: "act-json-prod",
      capsuleId: "web",
      changes: [{ addImage: { image: "nginx:1.27" } }, { replicas: 2 }],
    });
    expect(deployed).toMatchObject({ status: 200, body: { rolloutId: "1" } });
  });

  it("deploys to an environment created without projects, in binary protobuf", async () => {
    const binary = <S extends Parameters<typeof client>[0]>(service: S) => client(service, admin.accessToken, "connect-binary");
    await binary(ProjectService).create({ projectId: "act-bin" });
    // The specification's one Update field: making it the default leaves it global.
    await binary(EnvironmentService).create({ environmentId: "act-bin-prod", clusterId: "local", initializers: [{ field: { case: "default", value: true } }] });
    await binary(CapsuleService).create({ projectId: "act-bin", name: "web" });
    const { rolloutId } = await binary(CapsuleService).deploy({ projectId: "act-bin", environmentId: "act-bin-prod", capsuleId: "web", changes: nginx });
    expect(rolloutId).toBe(1n);
    expect((await listAll()).find((e) => e.environmentId === "act-bin-prod")).toMatchObject({ global: true, activeProjects: [], default: true });
    await environments().update({ environmentId: "act-bin-prod", updates: [{ field: { case: "default", value: false } }] });
  });

  it("is scoped by the first of Rig v1.9's fields a client sends, and not before", async () => {
    const notActive = (p: Promise<unknown>) => errorOf(p).then((e) => [e.code, e.rawMessage.includes("not active")]);

    // Created with add_project: active in that project only.
    await environments().create({ environmentId: "act-one", initializers: [{ field: { case: "addProject", value: "act-shop" } }] });
    expect((await deployTo("act-one", "act-shop")).rolloutId).toBeGreaterThan(0n);
    expect(await notActive(deployTo("act-one", "act-blog"))).toEqual([Code.FailedPrecondition, true]);

    // Created bare, then add_project: from then on only the projects added.
    await environments().create({ environmentId: "act-later" });
    expect((await listAll()).find((e) => e.environmentId === "act-later")).toMatchObject({ global: true, activeProjects: [] });
    await environments().update({ environmentId: "act-later", updates: [{ field: { case: "addProject", value: "act-blog" } }] });
    expect((await listAll()).find((e) => e.environmentId === "act-later")).toMatchObject({ global: false, activeProjects: ["act-blog"] });
    expect(await notActive(deployTo("act-later", "act-shop"))).toEqual([Code.FailedPrecondition, true]);
    expect((await deployTo("act-later", "act-blog")).rolloutId).toBeGreaterThan(0n);

    // set_global false: active nowhere until a project is added; set_global true: everywhere, and add_project keeps it so.
    await environments().create({ environmentId: "act-none", initializers: [{ field: { case: "setGlobal", value: false } }] });
    expect(await notActive(deployTo("act-none", "act-shop"))).toEqual([Code.FailedPrecondition, true]);
    await environments().create({ environmentId: "act-all", initializers: [{ field: { case: "setGlobal", value: true } }] });
    await environments().update({ environmentId: "act-all", updates: [{ field: { case: "addProject", value: "act-shop" } }] });
    expect((await listAll()).find((e) => e.environmentId === "act-all")).toMatchObject({ global: true, activeProjects: ["act-shop"] });
    expect((await deployTo("act-all", "act-blog")).rolloutId).toBeGreaterThan(0n);
  });
});
