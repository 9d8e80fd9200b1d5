/**
 * `docker_registries`: the Docker registries of the project settings, and their pull
 * credentials for the runner: only those of the registry an image is on, decrypted, in the
 * shape of the runner protocol.
 */
import { z } from "zod";
import { alreadyExists } from "../core/errors";
import { parseReference } from "../core/image-reference";
import type { RegistryAuth } from "../../proto/frames/runner";
import type { Env } from "../env";
import type { Columns } from "./row";
import type { dockerRegistries } from "./schema";
import { decryptSecret } from "./secrets";

/** Docker Hub's names: a registry stored as any of them is the one `index.docker.io` images are on. */
const HUB = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
/** As project-settings.ts stores it: the auth string, or username and password (and an email the runner does not need). */
const StoredSecret = z.object({ auth: z.string().optional(), username: z.string().optional(), password: z.string().optional() });
const same = (a: string, b: string) => a === b || (HUB.has(a) && HUB.has(b));

/** The project settings' credentials for the registry of `imageId` (none when the image cannot be parsed or has none). */
export async function registryAuthsFor(env: Env, imageId: string): Promise<RegistryAuth[]> {
  let registry: string;
  try {
    registry = parseReference(imageId).registry.toLowerCase();
  } catch {
    return [];
  }
  const rows = await env.DB.prepare("SELECT id, host, secret FROM docker_registries").all<Columns<typeof dockerRegistries, "id" | "host" | "secret">>();
  const out: RegistryAuth[] = [];
  for (const r of rows.results.filter((x) => same(x.host, registry))) {
    const secret = StoredSecret.parse(JSON.parse(new TextDecoder().decode(await decryptSecret(env, r.secret, `docker-registry/${r.id}`))));
    out.push({ host: r.host, ...secret });
  }
  return out;
}

/** The registries of project `projectId`, in the order they were added. */
export async function listRegistries(env: Env, projectId: string): Promise<Columns<typeof dockerRegistries, "id" | "host">[]> {
  const rows = await env.DB.prepare("SELECT id, host FROM docker_registries WHERE project_id = ? ORDER BY created_at, host")
    .bind(projectId)
    .all<Columns<typeof dockerRegistries, "id" | "host">>();
  return rows.results;
}

/** A registry to add (its `secret` already encrypted) or, by id, one to delete. */
export type RegistryChange = { add: Columns<typeof dockerRegistries, "id" | "project_id" | "host" | "secret"> } | { deleteId: string };

/**
 * Applies `changes` in one atomic batch, added at `now`; already_exists if a concurrent update
 * added one of the hosts first.
 */
export async function updateRegistries(env: Env, changes: RegistryChange[], now: number): Promise<void> {
  if (changes.length === 0) return;
  const statements = changes.map((c) =>
    "add" in c
      ? env.DB.prepare("INSERT INTO docker_registries (id, project_id, host, secret, created_at) VALUES (?, ?, ?, ?, ?)").bind(
          c.add.id,
          c.add.project_id,
          c.add.host,
          c.add.secret,
          now,
        )
      : env.DB.prepare("DELETE FROM docker_registries WHERE id = ?").bind(c.deleteId),
  );
  await env.DB.batch(statements).catch((err: unknown) => {
    if (String(err).includes("UNIQUE constraint failed: docker_registries.")) throw alreadyExists("docker registry with this host");
    throw err;
  });
}

/** Deletes the registries of project `projectId`, once its row is gone (in the same batch). */
export const deleteRegistriesOfDeletedProject = (env: Env, projectId: string) =>
  env.DB.prepare("DELETE FROM docker_registries WHERE project_id = ?1 AND NOT EXISTS (SELECT 1 FROM projects WHERE id = ?1)").bind(projectId);
