/** api.v1.project.Service: projects, the top-level grouping of capsules. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Update } from "../../proto/gen/api/v1/project/project_pb";
import { Service } from "../../proto/gen/api/v1/project/service_pb";
import { projectAndEnvironmentExist } from "../d1/environments";
import {
  getProject,
  insertProject,
  listProjects,
  type ProjectRow,
  projectPublicKey,
  renameProject,
} from "../d1/projects";
import { deleteProject } from "../d1/cascades";
import { installationId } from "../d1/settings";
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
import { exists } from "../d1/exists";

const project = scoped<{ projectId?: string }>("project", "projectId");

const NAME_MAX = 100;

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
  const row = await getProject(env, projectId);
  if (!row) throw notFound(`project ${bounded(projectId)}`);
  return row;
}

/**
 * Objects and metrics come from the runner of an environment, and none connects yet: the
 * request is checked, then refused with the reason rather than answered with an empty list.
 */
async function noRunner(env: Env, projectId: string, environmentId: string, what: string): Promise<never> {
  const [project, environment] = await projectAndEnvironmentExist(env, projectId, environmentId);
  if (!project) throw notFound(`project ${bounded(projectId)}`);
  if (environmentId && !environment) throw notFound(`environment ${bounded(environmentId)}`);
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
      if (await exists(env, "project", req.projectId)) throw alreadyExists(`project ${bounded(req.projectId)}`);
      const [installation, keys] = await Promise.all([installationId(env), keyPair(env, req.projectId)]);
      const now = Date.now();
      // already_exists too if another request created it since the check above.
      await insertProject(env, {
        id: req.projectId,
        name,
        installation_id: installation,
        public_key: keys.publicKey,
        private_key: keys.privateKey,
        created_at: now,
        updated_at: now,
      });
      return { project: projectOf({ id: req.projectId, name, installation_id: installation, created_at: now, updated_at: now }) };
    },

    async delete(req, ctx) {
      const { deleted, capsules } = await deleteProject(envOf(ctx), req.projectId);
      if (!deleted) {
        if (capsules > 0) throw failedPrecondition(`project ${req.projectId} still has ${capsules} capsule(s): delete them first`);
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
      const rows = await listProjects(env, page.descending);
      const visible = rows.filter((r) => allows(p, "project:view", { project: r.id, resource: `project/${r.id}` }));
      return {
        projects: visible.slice(page.offset, page.offset + page.limit).map(projectOf),
        total: BigInt(visible.length),
      };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const name = nameFrom(req.updates, "updates");
      const found = await (name === undefined ? exists(env, "project", req.projectId) : renameProject(env, req.projectId, name, Date.now()));
      if (!found) throw notFound(`project ${bounded(req.projectId)}`);
      return {};
    },

    async publicKey(req, ctx) {
      const publicKey = await projectPublicKey(envOf(ctx), req.projectId);
      if (publicKey === null) throw notFound(`project ${bounded(req.projectId)}`);
      return { publicKey };
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
