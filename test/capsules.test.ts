import { Code } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { Service as CapsuleService } from "../proto/gen/api/v1/capsule/service_pb";
import { Service as ImageService } from "../proto/gen/api/v1/image/service_pb";
import { Service as ProjectService } from "../proto/gen/api/v1/project/service_pb";
import { Service as RoleService } from "../proto/gen/api/v1/role/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { codeOf, errorOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const capsules = () => client(CapsuleService, admin.accessToken);

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
  for (const projectId of ["shop", "other", "bulk"]) await client(ProjectService, admin.accessToken).create({ projectId });
});

/** A registered user holding `role`. */
async function userWith(role: string) {
  const res = await register(freshEmail(role));
  await client(RoleService, admin.accessToken).assign({ roleId: role, entityId: { kind: { case: "userId", value: res.userId } } });
  return { id: res.userId, token: res.token!.accessToken };
}

describe("capsule.Service", () => {
  it("creates, gets, lists, updates and deletes a capsule, recording who changed it", async () => {
    const before = Date.now();
    expect(await capsules().create({ projectId: "shop", name: "web" })).toMatchObject({ capsuleId: "web" });
    const { capsule } = await capsules().get({ projectId: "shop", capsuleId: "web" });
    expect(capsule?.capsuleId).toBe("web");
    expect(timestampMs(capsule!.updatedAt!)).toBeGreaterThanOrEqual(before);
    expect(capsule?.updatedBy?.account).toEqual({ case: "userId", value: admin.userId });
    expect(capsule?.updatedBy?.identifier).toBe(admin.email);

    const list = await capsules().list({ projectId: "shop" });
    expect(list.capsules.map((c) => c.capsuleId)).toEqual(["web"]);
    expect(list.total).toBe(1n);

    // Update carries no fields; it touches the capsule, as another user here.
    const dev = await userWith("developer");
    await new Promise((r) => setTimeout(r, 5));
    await client(CapsuleService, dev.token).update({ projectId: "shop", capsuleId: "web", updates: [{}] });
    const touched = (await capsules().get({ projectId: "shop", capsuleId: "web" })).capsule!;
    expect(timestampMs(touched.updatedAt!)).toBeGreaterThan(timestampMs(capsule!.updatedAt!));
    expect(touched.updatedBy?.account).toEqual({ case: "userId", value: dev.id });

    await capsules().delete({ projectId: "shop", capsuleId: "web" });
    expect(await codeOf(capsules().get({ projectId: "shop", capsuleId: "web" }))).toBe(Code.NotFound);
    expect((await capsules().list({ projectId: "shop" })).total).toBe(0n);
  });

  it("names capsules by DNS label, unique per project", async () => {
    for (const bad of ["", "Upper", "under_score", "-x", "a".repeat(64)]) {
      const err = await errorOf(capsules().create({ projectId: "shop", name: bad }));
      expect(err.code, bad).toBe(Code.InvalidArgument);
      expect(err.rawMessage, bad).toMatch(/^name: /);
    }
    await capsules().create({ projectId: "shop", name: "api" });
    expect(await codeOf(capsules().create({ projectId: "shop", name: "api" }))).toBe(Code.AlreadyExists);
    // The same name in another project is another capsule.
    await capsules().create({ projectId: "other", name: "api" });
    await capsules().delete({ projectId: "other", capsuleId: "api" });
    expect(await capsules().get({ projectId: "shop", capsuleId: "api" })).toBeTruthy();
  });

  it("requires the project, and refuses unknown projects and capsules", async () => {
    // Thunks: a call starts only when awaited, so no rejection goes unhandled.
    for (const call of [
      () => capsules().create({ name: "x" }),
      () => capsules().get({ capsuleId: "x" }),
      () => capsules().list({}),
      () => capsules().update({ capsuleId: "x" }),
      () => capsules().delete({ capsuleId: "x" }),
    ]) {
      const err = await errorOf(call());
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/^project_id: /);
    }
    expect((await errorOf(capsules().get({ projectId: "shop" }))).rawMessage).toMatch(/^capsule_id: /);
    expect(await codeOf(capsules().create({ projectId: "nowhere", name: "x" }))).toBe(Code.NotFound);
    expect(await codeOf(capsules().list({ projectId: "nowhere" }))).toBe(Code.NotFound);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM capsules WHERE project_id = 'nowhere'").first()).toEqual({ n: 0 });
    for (const call of [
      () => capsules().get({ projectId: "shop", capsuleId: "ghost" }),
      () => capsules().update({ projectId: "shop", capsuleId: "ghost" }),
      () => capsules().delete({ projectId: "shop", capsuleId: "ghost" }),
      // A capsule of another project is not found through this one.
      () => capsules().get({ projectId: "other", capsuleId: "api" }),
    ]) {
      expect(await codeOf(call())).toBe(Code.NotFound);
    }
  });

  it("deletes a capsule's images with it", async () => {
    await capsules().create({ projectId: "shop", name: "worker" });
    const images = client(ImageService, admin.accessToken);
    await images.add({ projectId: "shop", capsuleId: "worker", image: "registry.test/team/app:v1" });
    await images.add({ projectId: "shop", capsuleId: "worker", image: "nginx", skipImageCheck: true });
    await capsules().delete({ projectId: "shop", capsuleId: "worker" });
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM images WHERE project_id = 'shop' AND capsule_id = 'worker'").first()).toEqual({ n: 0 });
    // A new capsule of the same name starts with no images.
    await capsules().create({ projectId: "shop", name: "worker" });
    expect((await images.list({ projectId: "shop", capsuleId: "worker" })).total).toBe(0n);
  });

  it("pages with totals and Rig's limits", async () => {
    await env.DB.batch(
      Array.from({ length: 55 }, (_, i) =>
        env.DB.prepare("INSERT INTO capsules (project_id, id, created_at, updated_at) VALUES ('bulk', ?, 0, 0)").bind(`c-${String(i).padStart(2, "0")}`),
      ),
    );
    const all = await capsules().list({ projectId: "bulk" });
    expect(all.total).toBe(55n);
    expect(all.capsules).toHaveLength(50);
    expect(all.capsules[0]?.capsuleId).toBe("c-00");
    expect((await capsules().list({ projectId: "bulk", pagination: { limit: 5000 } })).capsules).toHaveLength(50);
    const page = await capsules().list({ projectId: "bulk", pagination: { offset: 50, limit: 10 } });
    expect(page.capsules.map((c) => c.capsuleId)).toEqual(["c-50", "c-51", "c-52", "c-53", "c-54"]);
    const desc = await capsules().list({ projectId: "bulk", pagination: { limit: 2, descending: true } });
    expect(desc.capsules.map((c) => c.capsuleId)).toEqual(["c-54", "c-53"]);
    expect(desc.total).toBe(55n);
  });

  it("lets a developer create capsules, a viewer only look, and only owners delete", async () => {
    const dev = await userWith("developer");
    const viewer = await userWith("viewer");
    await client(CapsuleService, dev.token).create({ projectId: "shop", name: "by-dev" });
    expect(await codeOf(client(CapsuleService, viewer.token).create({ projectId: "shop", name: "by-viewer" }))).toBe(Code.PermissionDenied);
    expect((await client(CapsuleService, viewer.token).get({ projectId: "shop", capsuleId: "by-dev" })).capsule?.capsuleId).toBe("by-dev");
    expect(await codeOf(client(CapsuleService, dev.token).delete({ projectId: "shop", capsuleId: "by-dev" }))).toBe(Code.PermissionDenied);
  });
});
