import { toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CreateResponseSchema,
  GetResponseSchema,
  ListResponseSchema,
  PublicKeyResponseSchema,
  Service as ProjectService,
} from "../proto/gen/api/v1/project/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { decryptSecret } from "../workers/d1/secrets";
import { b64 } from "../workers/core/encoding";
import type { Env } from "../workers/env";
import { codeOf, errorOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const projects = () => client(ProjectService, admin.accessToken);

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
});

const pemBody = (pem: string) => Uint8Array.from(atob(pem.replace(/-----[A-Z ]+-----|\s/g, "")), (c) => c.charCodeAt(0));

/** Inserts a project straight into D1, for volumes the API would make slow. */
const insertProject = (id: string, createdAt: number) =>
  env.DB.prepare(
    "INSERT INTO projects (id, name, installation_id, public_key, private_key, created_at, updated_at) VALUES (?, ?, 'inst', 'pub', 'priv', ?, ?)",
  ).bind(id, id, createdAt, createdAt);

const insertEnvironment = (id: string) =>
  env.DB.prepare(
    "INSERT INTO environments (id, cluster_id, namespace_template, created_at, updated_at) VALUES (?, 'local', '{{ .Project.Name }}', 0, 0)",
  )
    .bind(id)
    .run();

/** A user whose only role grants project:view in `projectId`. */
async function userSeeingOnly(projectId: string) {
  const res = await register(freshEmail("scoped"));
  const roleId = `view-${projectId}`;
  const permissions = [{ action: "project:view", scope: { resource: "*", project: projectId, environment: "*" } }];
  await env.DB.batch([
    env.DB.prepare("INSERT INTO roles (id, permissions, predefined, created_at, updated_at) VALUES (?, ?, 0, 0, 0)").bind(
      roleId,
      JSON.stringify(permissions),
    ),
    env.DB.prepare("INSERT INTO role_assignments (role_id, subject_type, subject_id, created_at) VALUES (?, 'user', ?, 0)").bind(roleId, res.userId),
  ]);
  return client(ProjectService, res.token!.accessToken);
}

describe("project.Service", () => {
  it("creates, gets, updates and deletes a project", async () => {
    const before = Date.now();
    const created = (await projects().create({ projectId: "shop", initializers: [{ field: { case: "name", value: "Shop front" } }] })).project!;
    expect(created.projectId).toBe("shop");
    expect(created.name).toBe("Shop front");
    expect(Number(created.createdAt!.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(created.installationId).toMatch(/^[0-9a-f-]{36}$/);

    const got = (await projects().get({ projectId: "shop" })).project!;
    expect(got.name).toBe("Shop front");
    expect(got.installationId).toBe(created.installationId);

    await projects().update({ projectId: "shop", updates: [{ field: { case: "name", value: "Shop" } }] });
    const updated = (await projects().get({ projectId: "shop" })).project!;
    expect(updated.name).toBe("Shop");
    expect(updated.createdAt).toEqual(created.createdAt);

    await projects().delete({ projectId: "shop" });
    expect(await codeOf(projects().get({ projectId: "shop" }))).toBe(Code.NotFound);
    expect(await codeOf(projects().delete({ projectId: "shop" }))).toBe(Code.NotFound);
  });

  it("names a project after its id by default and shares one installation id", async () => {
    const a = (await projects().create({ projectId: "named-a" })).project!;
    const b = (await projects().create({ projectId: "named-b" })).project!;
    expect(a.name).toBe("named-a");
    expect(a.installationId).toBe(b.installationId);
    const row = await env.DB.prepare("SELECT value FROM settings WHERE key = 'installation'").first<{ value: string }>();
    expect(JSON.parse(row!.value).installationId).toBe(a.installationId);
  });

  it("accepts only DNS labels as project ids", async () => {
    for (const projectId of ["", "Upper", "has_underscore", "-dash", "dash-", "a.b", "x".repeat(64), "sp ace"]) {
      const err = await errorOf(projects().create({ projectId }));
      expect(err.code, projectId).toBe(Code.InvalidArgument);
      expect(err.rawMessage, projectId).toContain("project_id");
    }
    expect((await projects().create({ projectId: "x".repeat(63) })).project?.projectId).toBe("x".repeat(63));
    expect((await projects().create({ projectId: "0-9" })).project?.projectId).toBe("0-9");
  });

  it("refuses duplicates, bad names and unknown ids", async () => {
    await projects().create({ projectId: "twice" });
    expect(await codeOf(projects().create({ projectId: "twice" }))).toBe(Code.AlreadyExists);
    expect(await codeOf(projects().create({ projectId: "blank", initializers: [{ field: { case: "name", value: "  " } }] }))).toBe(
      Code.InvalidArgument,
    );
    expect(await codeOf(projects().create({ projectId: "unset", initializers: [{ field: { case: undefined } }] }))).toBe(Code.InvalidArgument);
    expect(await codeOf(projects().get({ projectId: "unset" }))).toBe(Code.NotFound);
    expect(await codeOf(projects().update({ projectId: "twice", updates: [{ field: { case: "name", value: "" } }] }))).toBe(Code.InvalidArgument);

    // Thunks: a call started before its turn to be awaited would reject unhandled.
    for (const call of [
      () => projects().get({ projectId: "nope" }),
      () => projects().update({ projectId: "nope", updates: [{ field: { case: "name", value: "x" } }] }),
      () => projects().update({ projectId: "nope", updates: [] }),
      () => projects().delete({ projectId: "nope" }),
      () => projects().publicKey({ projectId: "nope" }),
    ]) {
      expect(await codeOf(call())).toBe(Code.NotFound);
    }
  });

  it("serves a public key whose private half is sealed in D1 and never sent", async () => {
    const created = await projects().create({ projectId: "keyed" });
    const { publicKey } = await projects().publicKey({ projectId: "keyed" });
    expect(publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----\n$/);

    const row = await env.DB.prepare("SELECT public_key, private_key FROM projects WHERE id = 'keyed'").first<{ public_key: string; private_key: string }>();
    expect(row!.public_key).toBe(publicKey);
    expect(row!.private_key).not.toContain("PRIVATE KEY");

    // The sealed key opens only under the installation key and for this project, and it pairs with the public key.
    const pkcs8 = await decryptSecret(env as unknown as Env, row!.private_key, "project/keyed");
    await expect(decryptSecret(env as unknown as Env, row!.private_key, "project/other")).rejects.toThrow();
    expect(row!.private_key).not.toContain(b64(pkcs8));
    const signer = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
    const verifier = await crypto.subtle.importKey("spki", pemBody(publicKey), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    const data = new TextEncoder().encode("edgeplane");
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, signer, data);
    expect(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, verifier, signature, data)).toBe(true);

    const responses = [
      toJsonString(CreateResponseSchema, created),
      toJsonString(GetResponseSchema, await projects().get({ projectId: "keyed" })),
      toJsonString(ListResponseSchema, await projects().list({ pagination: { limit: 1000 } })),
      toJsonString(PublicKeyResponseSchema, await projects().publicKey({ projectId: "keyed" })),
    ];
    for (const text of responses) {
      expect(text).not.toContain(b64(pkcs8));
      expect(text).not.toContain(row!.private_key);
      expect(text).not.toContain("PRIVATE KEY");
    }
    // Each project gets its own pair.
    await projects().create({ projectId: "keyed-2" });
    expect((await projects().publicKey({ projectId: "keyed-2" })).publicKey).not.toBe(publicKey);
  });

  it("deletes a project's environment links and registries with it", async () => {
    await projects().create({ projectId: "doomed" });
    await projects().create({ projectId: "survivor" });
    await env.DB.batch([
      env.DB.prepare("INSERT INTO environment_projects (environment_id, project_id) VALUES ('prod', 'doomed'), ('prod', 'survivor')"),
      env.DB.prepare(
        "INSERT INTO docker_registries (id, project_id, host, secret, created_at) VALUES ('r1', 'doomed', 'ghcr.io', 'x', 0), ('r2', 'survivor', 'ghcr.io', 'x', 0)",
      ),
    ]);
    await projects().delete({ projectId: "doomed" });
    const links = await env.DB.prepare("SELECT project_id FROM environment_projects WHERE environment_id = 'prod'").all<{ project_id: string }>();
    expect(links.results.map((r) => r.project_id)).toEqual(["survivor"]);
    const regs = await env.DB.prepare("SELECT id FROM docker_registries WHERE id IN ('r1', 'r2')").all<{ id: string }>();
    expect(regs.results.map((r) => r.id)).toEqual(["r2"]);
  });

  it("refuses to delete a project that still has capsules, changing nothing", async () => {
    await projects().create({ projectId: "busy" });
    await env.DB.prepare("INSERT INTO environment_projects (environment_id, project_id) VALUES ('prod', 'busy')").run();
    await client(CapsuleService, admin.accessToken).create({ projectId: "busy", name: "web" });
    const err = await errorOf(projects().delete({ projectId: "busy" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("capsule");
    expect((await projects().get({ projectId: "busy" })).project?.projectId).toBe("busy");
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM environment_projects WHERE project_id = 'busy'").first()).toEqual({ n: 1 });
    await client(CapsuleService, admin.accessToken).delete({ projectId: "busy", capsuleId: "web" });
    await projects().delete({ projectId: "busy" });
    expect(await codeOf(projects().get({ projectId: "busy" }))).toBe(Code.NotFound);
  });

  it("pages lists: a limit of 0 or above 1000 means 50, and total counts every project", async () => {
    await env.DB.batch(Array.from({ length: 60 }, (_, i) => insertProject(`bulk-${String(i).padStart(2, "0")}`, 1_000 + i)));
    const count = (await env.DB.prepare("SELECT COUNT(*) AS n FROM projects").first<{ n: number }>())!.n;
    expect(count).toBeGreaterThan(60);

    for (const limit of [0, 1001, 5000]) {
      const page = await projects().list({ pagination: { limit } });
      expect(page.projects.length, `limit ${limit}`).toBe(50);
      expect(page.total).toBe(BigInt(count));
    }
    const all = await projects().list({ pagination: { limit: 1000 } });
    expect(all.projects.length).toBe(count);
    // Oldest first: the bulk rows were created at t=1000.., before anything made through the API.
    expect(all.projects[0]!.projectId).toBe("bulk-00");

    const page = await client(ProjectService, admin.accessToken, "connect-binary").list({ pagination: { offset: 5, limit: 10 } });
    expect(page.projects.map((p) => p.projectId)).toEqual(Array.from({ length: 10 }, (_, i) => `bulk-${String(i + 5).padStart(2, "0")}`));
    expect(page.total).toBe(BigInt(count));

    const desc = await projects().list({ pagination: { limit: 3, descending: true } });
    expect(desc.projects.map((p) => p.projectId)).toEqual(all.projects.slice(-3).reverse().map((p) => p.projectId));
  });

  it("lists only the projects the caller may view", async () => {
    await projects().create({ projectId: "visible" });
    await projects().create({ projectId: "hidden" });
    const scoped = await userSeeingOnly("visible");
    const listed = await scoped.list({});
    expect(listed.projects.map((p) => p.projectId)).toEqual(["visible"]);
    expect(listed.total).toBe(1n);
    expect((await scoped.get({ projectId: "visible" })).project?.projectId).toBe("visible");
    expect(await codeOf(scoped.get({ projectId: "hidden" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(scoped.publicKey({ projectId: "hidden" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(scoped.create({ projectId: "mine" }))).toBe(Code.PermissionDenied);
    expect(await codeOf(scoped.delete({ projectId: "visible" }))).toBe(Code.PermissionDenied);

    const nobody = await register(freshEmail("nobody"));
    expect(await codeOf(client(ProjectService, nobody.token!.accessToken).list({}))).toBe(Code.PermissionDenied);
  });

  it("validates object and metric requests, then says that no runner reports them", async () => {
    await projects().create({ projectId: "objects" });
    await insertEnvironment("staging");

    const objects = (projectId: string, environmentId: string, kind = "Deployment") =>
      projects().getObjectsByKind({ projectId, environmentId, kind, apiVersion: "apps/v1" });
    expect(await codeOf(objects("no-project", "staging"))).toBe(Code.NotFound);
    expect(await codeOf(objects("objects", "no-env"))).toBe(Code.NotFound);
    expect(await codeOf(objects("objects", "staging", ""))).toBe(Code.InvalidArgument);
    const err = await errorOf(objects("objects", "staging"));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("no runner is connected for environment staging");

    const metrics = (projectId: string, environmentId: string, name = "web") =>
      projects().getCustomObjectMetrics({ projectId, environmentId, objectReference: { kind: "Deployment", name, apiVersion: "apps/v1" } });
    expect(await codeOf(metrics("no-project", "staging"))).toBe(Code.NotFound);
    expect(await codeOf(metrics("objects", "no-env"))).toBe(Code.NotFound);
    expect(await codeOf(metrics("objects", "staging", ""))).toBe(Code.InvalidArgument);
    expect(await codeOf(projects().getCustomObjectMetrics({ projectId: "objects", environmentId: "staging" }))).toBe(Code.InvalidArgument);
    const merr = await errorOf(metrics("objects", "staging"));
    expect(merr.code).toBe(Code.FailedPrecondition);
    expect(merr.rawMessage).toContain("runner");
  });
});
