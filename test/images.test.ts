import { Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
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
const images = () => client(ImageService, admin.accessToken);
const at = { projectId: "img", capsuleId: "web" };

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
  await client(ProjectService, admin.accessToken).create({ projectId: "img" });
  for (const name of ["web", "api", "bulk", "roles"]) await client(CapsuleService, admin.accessToken).create({ projectId: "img", name });
});

/**
 * The digest of a manifest as the stub registry serves it, computed here from its bytes
 * (the test's fetch reaches the same stub as the Worker's).
 */
async function digestOf(repository: string, ref: string, token?: string): Promise<string> {
  const res = await fetch(`https://registry.test/v2/${repository}/manifests/${ref}`, {
    headers: { accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  expect(res.status).toBe(200);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", await res.arrayBuffer()));
  return `sha256:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

describe("image.Service: Add, Get, List, Delete", () => {
  it("adds an image resolved against its registry, pinned to the digest its tag points to", async () => {
    const digest = await digestOf("team/app", "v1");
    const added = await images().add({ ...at, image: "registry.test/team/app:v1" });
    expect(added).toMatchObject({ imageId: `registry.test/team/app:v1@${digest}`, addedNewImage: true });

    const { image } = await images().get({ ...at, imageId: added.imageId });
    expect(image).toMatchObject({ imageId: added.imageId, digest, repository: "registry.test/team/app", tag: "v1" });
    expect(image?.createdBy?.account).toEqual({ case: "userId", value: admin.userId });
    expect(Math.abs(timestampDate(image!.createdAt!).getTime() - Date.now())).toBeLessThan(60_000);
  });

  it("reports a repeated add, in any spelling of the same reference, as not new", async () => {
    const first = await images().add({ ...at, image: "registry.test/team/app:v2" });
    for (const spelling of ["registry.test/team/app:v2", "REGISTRY.TEST/team/app:v2", ` registry.test/team/app:v2@${await digestOf("team/app", "v2")}`]) {
      const again = await images().add({ ...at, image: spelling });
      expect(again, spelling).toEqual(expect.objectContaining({ imageId: first.imageId, addedNewImage: false }));
    }
    // `latest` points at the same manifest as v2, but is another tag: another image.
    expect((await images().add({ ...at, image: "registry.test/team/app" })).imageId).toMatch(/^registry\.test\/team\/app:latest@sha256:/);
    const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM images WHERE project_id = 'img' AND capsule_id = 'web' AND tag = 'v2'").first();
    expect(n).toEqual({ n: 1 });
  });

  it("stores origin and labels, and gets an image by any spelling of its id", async () => {
    const origin = { kind: { case: "gitReference" as const, value: { repositoryUrl: "https://github.com/team/api", commitSha: "abc", commitUrl: "https://github.com/team/api/commit/abc" } } };
    const { imageId } = await images().add({ projectId: "img", capsuleId: "api", image: "registry.test/team/plain:v1", origin, labels: { team: "core", ci: "yes" } });
    // This registry sends no digest header: the digest is the hash of the manifest it sent.
    expect(imageId).toBe(`registry.test/team/plain:v1@${await digestOf("team/plain", "v1")}`);
    const { image } = await images().get({ projectId: "img", capsuleId: "api", imageId: imageId.replace("registry.test", "Registry.Test") });
    expect(image?.imageId).toBe(imageId);
    expect(image?.labels).toEqual({ team: "core", ci: "yes" });
    expect(image?.origin?.kind).toEqual({ case: "gitReference", value: expect.objectContaining(origin.kind.value) });
  });

  it("skips the registry when asked, and takes the digest from its own field", async () => {
    const skipped = await images().add({ ...at, image: "registry.test/team/unknown:v9", skipImageCheck: true });
    expect(skipped).toMatchObject({ imageId: "registry.test/team/unknown:v9", addedNewImage: true });
    const hub = await images().add({ ...at, image: "nginx", skipImageCheck: true });
    expect(hub.imageId).toBe("index.docker.io/library/nginx:latest");
    expect((await images().get({ ...at, imageId: "nginx" })).image?.repository).toBe("index.docker.io/library/nginx");

    const digest = await digestOf("team/app", "v1");
    // Pinned by the digest field, no `latest` is assumed; the registry is asked for that digest.
    expect((await images().add({ ...at, image: "registry.test/team/app", digest })).imageId).toBe(`registry.test/team/app@${digest}`);
    const err = await errorOf(images().add({ ...at, image: "registry.test/team/app", digest: `sha256:${"0".repeat(64)}` }));
    expect(err.code).toBe(Code.NotFound);
    const bad = await errorOf(images().add({ ...at, image: "registry.test/team/app", digest: "sha256:nope" }));
    expect([bad.code, bad.rawMessage.startsWith("digest: ")]).toEqual([Code.InvalidArgument, true]);
    const mismatch = await errorOf(images().add({ ...at, image: `registry.test/team/app@${digest}`, digest: `sha256:${"1".repeat(64)}` }));
    expect([mismatch.code, mismatch.rawMessage.startsWith("digest: ")]).toEqual([Code.InvalidArgument, true]);
  });

  it("goes through the anonymous token flow of a registry that asks for it", async () => {
    // Without the token the registry refuses: the digest below proves the flow ran.
    expect((await fetch("https://registry.test/v2/private/app/manifests/v1", { method: "HEAD" })).status).toBe(401);
    const added = await images().add({ ...at, image: "registry.test/private/app:v1" });
    expect(added.imageId).toBe(`registry.test/private/app:v1@${await digestOf("private/app", "v1", "anon:private/app")}`);
  });

  it("refuses unknown images, and says which registry is unreachable", async () => {
    for (const image of ["registry.test/team/app:nope", "registry.test/team/missing:v1", "registry.test/private/missing:v1"]) {
      const err = await errorOf(images().add({ ...at, image }));
      expect(err.code, image).toBe(Code.NotFound);
      expect(err.rawMessage, image).toContain(image);
    }
    for (const host of ["down.registry.test", "elsewhere.test"]) {
      const err = await errorOf(images().add({ ...at, image: `${host}/app:v1` }));
      expect(err.code, host).toBe(Code.Unavailable);
      expect(err.rawMessage, host).toContain(`registry ${host}`);
    }
    const total = (await images().list(at)).total;
    expect((await images().list(at)).images.some((i) => i.imageId.includes("missing"))).toBe(false);
    expect(total).toBeGreaterThan(0n);
  });

  it("refuses bad references, missing ids and unknown capsules", async () => {
    for (const image of ["", "registry.test/Team/App:v1", "registry.test/team/app@sha256:123", "registry.test/team/app:-x", "a//b"]) {
      const err = await errorOf(images().add({ ...at, image }));
      expect(err.code, image).toBe(Code.InvalidArgument);
      expect(err.rawMessage, image).toMatch(/^image: /);
    }
    expect((await errorOf(images().add({ capsuleId: "web", image: "nginx" }))).rawMessage).toMatch(/^project_id: /);
    expect((await errorOf(images().list({ projectId: "img" }))).rawMessage).toMatch(/^capsule_id: /);
    expect((await errorOf(images().get({ ...at, imageId: "" }))).rawMessage).toMatch(/^image_id: /);
    expect((await errorOf(images().get({ ...at, imageId: "Not An Image" }))).code).toBe(Code.InvalidArgument);
    expect(await codeOf(images().add({ projectId: "img", capsuleId: "ghost", image: "nginx", skipImageCheck: true }))).toBe(Code.NotFound);
    expect(await codeOf(images().add({ projectId: "nowhere", capsuleId: "web", image: "nginx", skipImageCheck: true }))).toBe(Code.NotFound);
    expect(await codeOf(images().list({ projectId: "img", capsuleId: "ghost" }))).toBe(Code.NotFound);
    expect(await codeOf(images().get({ ...at, imageId: "registry.test/team/never:v1" }))).toBe(Code.NotFound);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM images WHERE capsule_id = 'ghost' OR project_id = 'nowhere'").first()).toEqual({ n: 0 });
  });

  it("deletes an image; an unknown one is not found", async () => {
    const { imageId } = await images().add({ projectId: "img", capsuleId: "api", image: "registry.test/team/app:v1" });
    await images().delete({ projectId: "img", capsuleId: "api", imageId });
    expect(await codeOf(images().get({ projectId: "img", capsuleId: "api", imageId }))).toBe(Code.NotFound);
    expect(await codeOf(images().delete({ projectId: "img", capsuleId: "api", imageId }))).toBe(Code.NotFound);
    // The same image in another capsule is untouched.
    expect((await images().get({ ...at, imageId })).image?.imageId).toBe(imageId);
  });

  it("lists a capsule's images newest first, with totals and Rig's limits", async () => {
    await env.DB.batch(
      Array.from({ length: 55 }, (_, i) =>
        env.DB.prepare("INSERT INTO images (project_id, capsule_id, id, repository, created_at) VALUES ('img', 'bulk', ?, 'r.io/x', ?)").bind(
          `r.io/x:t${String(i).padStart(2, "0")}`,
          1_000 + i,
        ),
      ),
    );
    const all = await images().list({ projectId: "img", capsuleId: "bulk" });
    expect(all.total).toBe(55n);
    expect(all.images).toHaveLength(50);
    expect(all.images[0]?.imageId).toBe("r.io/x:t54");
    expect((await images().list({ projectId: "img", capsuleId: "bulk", pagination: { limit: 5000 } })).images).toHaveLength(50);
    const page = await images().list({ projectId: "img", capsuleId: "bulk", pagination: { offset: 50, limit: 10 } });
    expect(page.images.map((i) => i.imageId)).toEqual(["r.io/x:t04", "r.io/x:t03", "r.io/x:t02", "r.io/x:t01", "r.io/x:t00"]);
    const oldest = await images().list({ projectId: "img", capsuleId: "bulk", pagination: { limit: 2, descending: true } });
    expect(oldest.images.map((i) => i.imageId)).toEqual(["r.io/x:t00", "r.io/x:t01"]);
    // Another capsule's images are not counted.
    expect((await images().list(at)).total).toBeLessThan(55n);
  });

  it("lets a developer add images, and a viewer only look", async () => {
    const userWith = async (role: string) => {
      const res = await register(freshEmail(role));
      await client(RoleService, admin.accessToken).assign({ roleId: role, entityId: { kind: { case: "userId", value: res.userId } } });
      return client(ImageService, res.token!.accessToken);
    };
    const dev = await userWith("developer");
    const viewer = await userWith("viewer");
    const where = { projectId: "img", capsuleId: "roles" };
    const { imageId, addedNewImage } = await dev.add({ ...where, image: "registry.test/team/app:v1" });
    expect(addedNewImage).toBe(true);
    expect(await codeOf(viewer.add({ ...where, image: "registry.test/team/app:v2" }))).toBe(Code.PermissionDenied);
    expect((await viewer.list(where)).images.map((i) => i.imageId)).toEqual([imageId]);
    // Deleting images is for owners.
    expect(await codeOf(dev.delete({ ...where, imageId }))).toBe(Code.PermissionDenied);
  });
});

describe("image.Service: registry look-ups", () => {
  it("describes an image: its parts, digest, creation time and origin from the config's labels", async () => {
    const info = await images().getImageInfo({ image: "registry.test/team/app:v1" });
    expect(info.imageId).toMatchObject({ registry: "registry.test", repository: "team/app", tag: "v1", digest: await digestOf("team/app", "v1") });
    expect(info.imageString).toBe("registry.test/team/app:v1");
    expect(timestampDate(info.createdAt!).toISOString()).toBe("2024-03-01T12:00:00.123Z");
    expect(info.origin?.kind).toEqual({
      case: "gitReference",
      value: expect.objectContaining({ repositoryUrl: "https://github.com/team/app", commitSha: "0123abc", commitUrl: "https://github.com/team/app/commit/0123abc" }),
    });
    const v2 = await images().getImageInfo({ image: "registry.test/team/app:v2" });
    expect(v2.createdAt).toBeUndefined();
    expect(v2.origin).toBeUndefined();
  });

  it("describes the linux/amd64 image of a multi-platform index, keeping the index's digest", async () => {
    const info = await images().getImageInfo({ image: "registry.test/team/multi" });
    expect(info.imageId).toMatchObject({ tag: "latest", digest: await digestOf("team/multi", "latest") });
    expect(timestampDate(info.createdAt!).toISOString()).toBe("2023-06-15T08:30:00.000Z");
  });

  it("reads private-looking registries through the token flow, blobs without the token", async () => {
    const info = await images().getImageInfo({ image: "registry.test/private/app:v1" });
    expect(timestampDate(info.createdAt!).toISOString()).toBe("2021-05-05T05:05:05.000Z");
    expect((await images().getRepositoryInfo({ registry: "registry.test", repository: "private/app" })).tags.map((t) => t.tag)).toEqual(["v1"]);
  });

  it("lists a repository's tags across the registry's pages", async () => {
    const { tags } = await images().getRepositoryInfo({ registry: "registry.test", repository: "team/app" });
    expect(tags.map((t) => t.tag)).toEqual(["latest", "v1", "v2"]);
  });

  it("refuses bad input and unknown images, and reports unreachable registries", async () => {
    expect(await codeOf(images().getImageInfo({ image: "registry.test/team/app:nope" }))).toBe(Code.NotFound);
    expect((await errorOf(images().getImageInfo({ image: "" }))).rawMessage).toMatch(/^image: /);
    expect(await codeOf(images().getImageInfo({ image: "down.registry.test/app" }))).toBe(Code.Unavailable);
    expect(await codeOf(images().getRepositoryInfo({ registry: "registry.test", repository: "team/missing" }))).toBe(Code.NotFound);
    expect((await errorOf(images().getRepositoryInfo({ registry: "registry.test", repository: "Team" }))).rawMessage).toMatch(/^repository: /);
    expect((await errorOf(images().getRepositoryInfo({ registry: "https://registry.test", repository: "team/app" }))).rawMessage).toMatch(/^registry: /);
  });
});
