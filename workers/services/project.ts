/** api.v1.project.Service: projects, the top-level grouping of capsules. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Update } from "../../proto/gen/api/v1/project/project_pb";
import { Service } from "../../proto/gen/api/v1/project/service_pb";
import { encryptSecret } from "../d1/secrets";
import { b64 } from "../core/encoding";
import { allows } from "../auth/principal";
import { scoped } from "../auth/scopes";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { alreadyExists, bounded, failedPrecondition, invalidArgument, notFound } from "../core/errors";
import { pageOf } from "../core/pagination";
import { checkDnsLabel } from "../core/names";
import { defineService } from "./registry";

const project = scoped<{ projectId?: string }>("project", "projectId");

const NAME_MAX = 100;

/** Columns a client may see: the key pair stays out of every read but PublicKey's. */
interface ProjectRow {
  id: string;
  name: string;
  installation_id: string;
  created_at: number;
  updated_at: number;
}
const COLUMNS = "id, name, installation_id, created_at, updated_at";

const projectOf = (r: ProjectRow) => ({
  projectId: r.id,
  name: r.name,
  installationId: r.installation_id,
  createdAt: timestampFromMs(r.created_at),
  updatedAt: timestampFromMs(r.updated_at),
});

/** The name the updates set, if any; the last one wins. */
function nameFrom(updates: Update[], field: string): string | undefined {
  let name: string | undefined;
  for (const [i, u] of updates.entries()) {
    if (u.field.case !== "name") throw invalidArgument(`${field}[${i}].field`, "set name");
    name = u.field.value.trim();
    if (!name || name.length > NAME_MAX) throw invalidArgument(`${field}[${i}].name`, `must be 1-${NAME_MAX} characters`);
  }
  return name;
}

/**
 * This installation's id, created once: INSERT OR IGNORE + RETURNING yields nothing when
 * another request won, hence the read in the same batch.
 */
export async function installationId(env: Env): Promise<string> {
  const fresh = JSON.stringify({ installationId: crypto.randomUUID() });
  const [, row] = await env.DB.batch<{ value: string }>([
    env.DB.prepare("INSERT OR IGNORE INTO settings (key, value, updated_at) VALUES ('installation', ?, ?)").bind(fresh, Date.now()),
    env.DB.prepare("SELECT value FROM settings WHERE key = 'installation'"),
  ]);
  return (JSON.parse(row!.results[0]!.value) as { installationId: string }).installationId;
}

/** A fresh ECDSA P-256 pair: the public half as SPKI PEM, the private half as sealed PKCS#8. */
async function keyPair(env: Env, projectId: string) {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const spki = new Uint8Array((await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer);
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer);
  const body = b64(spki).replace(/.{1,64}/g, "$&\n");
  return {
    publicKey: `-----BEGIN PUBLIC KEY-----\n${body}-----END PUBLIC KEY-----\n`,
    // Bound to the project, so a sealed key copied to another row will not open.
    privateKey: await encryptSecret(env, pkcs8, `project/${projectId}`),
  };
}

async function requireProject(env: Env, projectId: string): Promise<ProjectRow> {
  const row = await env.DB.prepare(`SELECT ${COLUMNS} FROM projects WHERE id = ?`).bind(projectId).first<ProjectRow>();
  if (!row) throw notFound(`project ${bounded(projectId)}`);
  return row;
}

/**
 * Objects and metrics come from the runner of an environment, and none connects yet: the
 * request is checked, then refused with the reason rather than answered with an empty list.
 */
async function noRunner(env: Env, projectId: string, environmentId: string, what: string): Promise<never> {
  const [p, e] = await env.DB.batch([
    env.DB.prepare("SELECT 1 AS one FROM projects WHERE id = ?").bind(projectId),
    env.DB.prepare("SELECT 1 AS one FROM environments WHERE id = ?").bind(environmentId),
  ]);
  if (!p!.results.length) throw notFound(`project ${bounded(projectId)}`);
  if (environmentId && !e!.results.length) throw notFound(`environment ${bounded(environmentId)}`);
  const where = environmentId ? `environment ${environmentId}` : "any environment of this project";
  throw failedPrecondition(
    `no runner is connected for ${where}: ${what} are reported by runners, so there are none to report; connect a runner and retry`,
  );
}

export const projects = defineService(
  Service,
  {
    create: { action: "project:edit", scope: project },
    delete: { action: "project:edit", scope: project },
    get: { action: "project:view", scope: project },
    // Lists show only the projects the caller may view.
    list: { action: "project:view", scope: "any" },
    update: { action: "project:edit", scope: project },
    publicKey: { action: "project:view", scope: project },
    getObjectsByKind: { action: "project:view", scope: project },
    getCustomObjectMetrics: { action: "project:view", scope: project },
  },
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      checkDnsLabel("project_id", req.projectId);
      const name = nameFrom(req.initializers, "initializers") ?? req.projectId;
      if (await env.DB.prepare("SELECT 1 AS one FROM projects WHERE id = ?").bind(req.projectId).first()) {
        throw alreadyExists(`project ${bounded(req.projectId)}`);
      }
      const [installation, keys] = await Promise.all([installationId(env), keyPair(env, req.projectId)]);
      const now = Date.now();
      await env.DB.prepare(
        "INSERT INTO projects (id, name, installation_id, public_key, private_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
        .bind(req.projectId, name, installation, keys.publicKey, keys.privateKey, now, now)
        .run()
        .catch((err: unknown) => {
          // Another request created it since the check above.
          if (String(err).includes("UNIQUE constraint failed: projects.id")) throw alreadyExists(`project ${bounded(req.projectId)}`);
          throw err;
        });
      return { project: projectOf({ id: req.projectId, name, installation_id: installation, created_at: now, updated_at: now }) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      // One transaction, and only while the project has no capsules: a capsule (with its images
      // and rollouts) is deleted on its own first, so nothing is left without its project.
      const gone = "NOT EXISTS (SELECT 1 FROM projects WHERE id = ?1)";
      const [deleted, capsules] = await env.DB.batch([
        env.DB.prepare("DELETE FROM projects WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM capsules WHERE project_id = ?1)").bind(req.projectId),
        env.DB.prepare("SELECT COUNT(*) AS n FROM capsules WHERE project_id = ?").bind(req.projectId),
        env.DB.prepare(`DELETE FROM environment_projects WHERE project_id = ?1 AND ${gone}`).bind(req.projectId),
        env.DB.prepare(`DELETE FROM docker_registries WHERE project_id = ?1 AND ${gone}`).bind(req.projectId),
      ]);
      if (deleted!.meta.changes === 0) {
        const n = (capsules!.results[0] as { n: number }).n;
        if (n > 0) throw failedPrecondition(`project ${req.projectId} still has ${n} capsule(s): delete them first`);
        throw notFound(`project ${bounded(req.projectId)}`);
      }
      return {};
    },

    async get(req, ctx) {
      return { project: projectOf(await requireProject(envOf(ctx), req.projectId)) };
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const p = principalOf(ctx);
      const page = pageOf(req.pagination);
      // Visibility is per project and decided by the caller's roles, so filter before paging;
      // installations hold few projects, and the key columns are not read.
      const rows = await env.DB.prepare(`SELECT ${COLUMNS} FROM projects ORDER BY created_at ${page.descending ? "DESC" : "ASC"}, id`).all<ProjectRow>();
      const visible = rows.results.filter((r) => allows(p, "project:view", { project: r.id, resource: `project/${r.id}` }));
      return {
        projects: visible.slice(page.offset, page.offset + page.limit).map(projectOf),
        total: BigInt(visible.length),
      };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const name = nameFrom(req.updates, "updates");
      const res = await (name === undefined
        ? env.DB.prepare("SELECT 1 AS one FROM projects WHERE id = ?").bind(req.projectId).all()
        : env.DB.prepare("UPDATE projects SET name = ?, updated_at = ? WHERE id = ? RETURNING 1 AS one").bind(name, Date.now(), req.projectId).all());
      if (!res.results.length) throw notFound(`project ${bounded(req.projectId)}`);
      return {};
    },

    async publicKey(req, ctx) {
      const row = await envOf(ctx).DB.prepare("SELECT public_key FROM projects WHERE id = ?").bind(req.projectId).first<{ public_key: string }>();
      if (!row) throw notFound(`project ${bounded(req.projectId)}`);
      return { publicKey: row.public_key };
    },

    async getObjectsByKind(req, ctx) {
      if (!req.kind) throw invalidArgument("kind", "is required, e.g. Deployment");
      return noRunner(envOf(ctx), req.projectId, req.environmentId, `${req.kind} objects`);
    },

    async getCustomObjectMetrics(req, ctx) {
      const ref = req.objectReference;
      if (!ref?.kind) throw invalidArgument("object_reference.kind", "is required");
      if (!ref.name) throw invalidArgument("object_reference.name", "is required");
      return noRunner(envOf(ctx), req.projectId, req.environmentId, `metrics of ${ref.kind} ${ref.name}`);
    },
  },
);
