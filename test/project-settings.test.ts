import { type MessageInitShape, toJsonString } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Plan } from "../proto/gen/api/v1/project/project_pb";
import { GetSettingsResponseSchema, Service as ProjectSettingsService } from "../proto/gen/api/v1/project/settings/service_pb";
import type { UpdateSchema } from "../proto/gen/api/v1/project/settings/settings_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { decryptSecret } from "../workers/d1/secrets";
import type { Env } from "../workers/env";
import { codeOf, errorOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const settings = () => client(ProjectSettingsService, admin.accessToken);

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
});

type UpdateInit = MessageInitShape<typeof UpdateSchema>;
const add = (host: string, secret: { auth: string } | { username: string; password: string; email?: string }): UpdateInit => ({
  field: {
    case: "addDockerRegistry",
    value: { host, field: "auth" in secret ? { case: "auth", value: secret.auth } : { case: "credentials", value: secret } },
  },
});
const del = (host: string): UpdateInit => ({ field: { case: "deleteDockerRegistry", value: host } });
const update = (...updates: UpdateInit[]) => settings().updateSettings({ updates });
const hosts = async () => (await settings().getSettings({})).settings!.dockerRegistries.map((r) => r.host).sort();

const rowsOf = () =>
  env.DB.prepare("SELECT id, project_id, host, secret FROM docker_registries ORDER BY host").all<{ id: string; project_id: string; host: string; secret: string }>();

describe("project.settings.Service", () => {
  it("adds registries and never returns or stores their secrets in clear", async () => {
    expect(await hosts()).toEqual([]);
    const auth = btoa("robot:auth-token-123");
    await update(add("ghcr.io", { auth }), add("Registry.Example.com:5000", { username: "deployer", password: "hunter2-pass", email: "d@example.com" }));

    const res = await settings().getSettings({});
    const regs = res.settings!.dockerRegistries;
    expect(regs.map((r) => r.host).sort()).toEqual(["ghcr.io", "registry.example.com:5000"]);
    const json = toJsonString(GetSettingsResponseSchema, res);
    for (const secret of [auth, "hunter2-pass", "deployer"]) expect(json).not.toContain(secret);

    const rows = (await rowsOf()).results;
    expect(rows.map((r) => r.project_id)).toEqual(["", ""]);
    expect(rows.map((r) => r.id).sort()).toEqual(regs.map((r) => r.secretId).sort());
    for (const secret of [auth, "hunter2-pass", "deployer", "robot"]) expect(JSON.stringify(rows)).not.toContain(secret);

    // What is sealed is what was given, and it opens only for its own row.
    const open = async (row: (typeof rows)[number]) =>
      JSON.parse(new TextDecoder().decode(await decryptSecret(env as unknown as Env, row.secret, `docker-registry/${row.id}`)));
    const ghcr = rows.find((r) => r.host === "ghcr.io")!;
    const other = rows.find((r) => r.host !== "ghcr.io")!;
    expect(await open(ghcr)).toEqual({ auth });
    expect(await open(other)).toEqual({ username: "deployer", password: "hunter2-pass", email: "d@example.com" });
    await expect(decryptSecret(env as unknown as Env, ghcr.secret, `docker-registry/${other.id}`)).rejects.toThrow();

    await update(del("ghcr.io"), del("registry.example.com:5000"));
    expect(await hosts()).toEqual([]);
  });

  it("validates hosts and what a registry authenticates with", async () => {
    for (const host of ["", "https://ghcr.io", "ghcr.io/org", "host:0", "host:70000", "host:", "-bad.io", "bad-.io", "a b", "a..b", "x".repeat(64) + ".io"]) {
      const err = await errorOf(update(add(host, { auth: "x" })));
      expect(err.code, host).toBe(Code.InvalidArgument);
      expect(err.rawMessage, host).toContain("updates[0].add_docker_registry.host");
    }
    expect(await codeOf(update(add("ok.io", { auth: "" })))).toBe(Code.InvalidArgument);
    expect(await codeOf(update(add("ok.io", { username: "u", password: "" })))).toBe(Code.InvalidArgument);
    expect(await codeOf(update(add("ok.io", { username: "", password: "p" })))).toBe(Code.InvalidArgument);
    expect(await codeOf(update({ field: { case: "addDockerRegistry", value: { host: "ok.io" } } }))).toBe(Code.InvalidArgument);
    expect(await codeOf(update({ field: { case: undefined } }))).toBe(Code.InvalidArgument);
    expect(await hosts()).toEqual([]);

    await update(add("localhost:5000", { auth: "x" }), add("10.0.0.7", { auth: "y" }));
    expect(await hosts()).toEqual(["10.0.0.7", "localhost:5000"]);
    await update(del("localhost:5000"), del("10.0.0.7"));
  });

  it("refuses duplicate hosts and unknown deletions, atomically", async () => {
    await update(add("quay.io", { auth: "a" }));
    expect(await codeOf(update(add("quay.io", { auth: "b" })))).toBe(Code.AlreadyExists);
    expect(await codeOf(update(add("QUAY.IO", { auth: "b" })))).toBe(Code.AlreadyExists);
    expect(await codeOf(update(add("one.io", { auth: "a" }), add("one.io", { auth: "b" })))).toBe(Code.AlreadyExists);
    expect(await codeOf(update(del("never.io")))).toBe(Code.NotFound);
    // A failing update applies none of the request's changes.
    expect(await codeOf(update(add("two.io", { auth: "a" }), del("never.io")))).toBe(Code.NotFound);
    expect(await hosts()).toEqual(["quay.io"]);

    // Replacing a registry's secret in one request: delete, then add again.
    const before = (await rowsOf()).results.find((r) => r.host === "quay.io")!;
    await update(del("QUAY.io"), add("quay.io", { auth: "new" }));
    const after = (await rowsOf()).results.find((r) => r.host === "quay.io")!;
    expect(after.id).not.toBe(before.id);
    expect(after.secret).not.toBe(before.secret);
    await update(del("quay.io"));
  });

  it("reports the free plan, without expiry, to any logged-in caller", async () => {
    const nobody = await register(freshEmail("nobody"));
    const license = await client(ProjectSettingsService, nobody.token!.accessToken).getLicenseInfo({});
    expect(license.plan).toBe(Plan.FREE);
    expect(license.expiresAt).toBeUndefined();
    expect(await codeOf(client(ProjectSettingsService).getLicenseInfo({}))).toBe(Code.Unauthenticated);
  });

  it("lets viewers read the settings and only editors change them", async () => {
    const nobody = client(ProjectSettingsService, (await register(freshEmail("nobody"))).token!.accessToken);
    expect(await codeOf(nobody.getSettings({}))).toBe(Code.PermissionDenied);

    const viewerRes = await register(freshEmail("viewer"));
    await env.DB.prepare("INSERT INTO role_assignments (role_id, subject_type, subject_id, created_at) VALUES ('viewer', 'user', ?, 0)")
      .bind(viewerRes.userId)
      .run();
    const viewer = client(ProjectSettingsService, viewerRes.token!.accessToken);
    expect((await viewer.getSettings({})).settings?.dockerRegistries).toEqual([]);
    expect(await codeOf(viewer.updateSettings({ updates: [add("ghcr.io", { auth: "x" })] }))).toBe(Code.PermissionDenied);
    expect(await hosts()).toEqual([]);
  });
});
