/** api.v1.capsule.Service: capsules, deploys and rollouts, instances, logs, cron jobs. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { scoped } from "../auth/scopes";
import type { Env } from "../env";
import { envOf, principalOf } from "../http/context";
import { alreadyExists, invalidArgument, notFound } from "../http/errors";
import { checkDnsLabel } from "../http/names";
import { pageOf } from "../http/pagination";
import { defineService } from "./registry";
import { authorOf } from "./user-messages";

const capsule = scoped<{ capsuleId?: string; projectId?: string; environmentId?: string }>("capsule", "capsuleId");
const anyCapsule = scoped("capsule");

interface CapsuleRow {
  id: string;
  updated_by: string;
  updated_at: number;
}

const capsuleMessage = (r: CapsuleRow) => ({
  capsuleId: r.id,
  updatedAt: timestampFromMs(r.updated_at),
  updatedBy: JSON.parse(r.updated_by) as ReturnType<typeof authorOf>,
});

/** The project a request names; every capsule lives in one, so it is required. */
export function projectOf(req: { projectId: string }): string {
  if (!req.projectId) throw invalidArgument("project_id", "is required: name the project the capsule is in");
  return req.projectId;
}

/** The project and capsule a request names, both required. */
export function capsuleKey(req: { projectId: string; capsuleId: string }) {
  const projectId = projectOf(req);
  if (!req.capsuleId) throw invalidArgument("capsule_id", "is required");
  return { projectId, capsuleId: req.capsuleId };
}

/** A capsule's row; not_found if the project has no such capsule. */
export async function requireCapsule(env: Env, projectId: string, capsuleId: string): Promise<CapsuleRow> {
  const row = await env.DB.prepare("SELECT id, updated_by, updated_at FROM capsules WHERE project_id = ? AND id = ?")
    .bind(projectId, capsuleId)
    .first<CapsuleRow>();
  if (!row) throw notFound(`capsule ${capsuleId} in project ${projectId}`);
  return row;
}

export const capsules = defineService(
  Service,
  {
    create: { action: "capsule:create", scope: anyCapsule },
    get: { action: "capsule:view", scope: capsule },
    delete: { action: "capsule:delete", scope: capsule },
    logs: { action: "capsule:view", scope: capsule },
    update: { action: "capsule:edit", scope: capsule },
    list: { action: "capsule:view", scope: anyCapsule },
    // Each kind of change also needs its deploy sub-action, checked by the handler.
    deploy: { action: "capsule:deploy", scope: capsule },
    listInstances: { action: "capsule:view", scope: capsule },
    restartInstance: { action: "capsule:restartinstance", scope: capsule },
    getRollout: { action: "capsule:view", scope: capsule },
    listRollouts: { action: "capsule:view", scope: capsule },
    abortRollout: { action: "capsule:abortrollout", scope: capsule },
    stopRollout: { action: "capsule:stoprollout", scope: capsule },
    listEvents: { action: "capsule:view", scope: capsule },
    capsuleMetrics: { action: "capsule:view", scope: capsule },
    getInstanceStatus: { action: "capsule:view", scope: capsule },
    listInstanceStatuses: { action: "capsule:view", scope: capsule },
    // Bidi: its scope is in the first message, checked by the handler.
    execute: { action: "capsule:execute" },
    getCustomInstanceMetrics: { action: "capsule:view", scope: capsule },
    getJobExecutions: { action: "capsule:view", scope: capsule },
  },
  // Deploys, rollouts, instances, logs and metrics come with the rollout milestone; until
  // then those RPCs answer unimplemented.
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      const projectId = projectOf(req);
      const id = checkDnsLabel("name", req.name);
      const now = Date.now();
      // `initializers` are the specification's deprecated Update messages, which carry no fields.
      // One statement inserts only into an existing project, so a concurrent project delete cannot orphan it.
      const [inserted, project] = await env.DB.batch([
        env.DB.prepare(
          `INSERT INTO capsules (project_id, id, updated_by, created_at, updated_at)
           SELECT ?1, ?2, ?3, ?4, ?4 WHERE EXISTS (SELECT 1 FROM projects WHERE id = ?1) ON CONFLICT DO NOTHING`,
        ).bind(projectId, id, JSON.stringify(authorOf(principalOf(ctx))), now),
        env.DB.prepare("SELECT 1 AS one FROM projects WHERE id = ?").bind(projectId),
      ]);
      if (!project!.results.length) throw notFound(`project ${projectId}`);
      if (inserted!.meta.changes === 0) throw alreadyExists(`capsule ${id} in project ${projectId}`);
      return { capsuleId: id };
    },

    async get(req, ctx) {
      const { projectId, capsuleId } = capsuleKey(req);
      return { capsule: capsuleMessage(await requireCapsule(envOf(ctx), projectId, capsuleId)) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const { projectId, capsuleId } = capsuleKey(req);
      // One transaction: no image outlives its capsule.
      const [deleted] = await env.DB.batch([
        env.DB.prepare("DELETE FROM capsules WHERE project_id = ? AND id = ?").bind(projectId, capsuleId),
        env.DB.prepare("DELETE FROM images WHERE project_id = ? AND capsule_id = ?").bind(projectId, capsuleId),
      ]);
      if (deleted!.meta.changes === 0) throw notFound(`capsule ${capsuleId} in project ${projectId}`);
      return {};
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const { projectId, capsuleId } = capsuleKey(req);
      // The specification's Update message carries no fields ("deprecated, now a no-op"): the
      // call only confirms that the capsule exists and records who touched it and when.
      const res = await env.DB.prepare("UPDATE capsules SET updated_at = ?, updated_by = ? WHERE project_id = ? AND id = ?")
        .bind(Date.now(), JSON.stringify(authorOf(principalOf(ctx))), projectId, capsuleId)
        .run();
      if (res.meta.changes === 0) throw notFound(`capsule ${capsuleId} in project ${projectId}`);
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const projectId = projectOf(req);
      const page = pageOf(req.pagination);
      const [project, rows, total] = await env.DB.batch<Record<string, unknown>>([
        env.DB.prepare("SELECT 1 AS one FROM projects WHERE id = ?").bind(projectId),
        env.DB.prepare(`SELECT id, updated_by, updated_at FROM capsules WHERE project_id = ? ORDER BY id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`)
          .bind(projectId, page.limit, page.offset),
        env.DB.prepare("SELECT COUNT(*) AS n FROM capsules WHERE project_id = ?").bind(projectId),
      ]);
      if (!project!.results.length) throw notFound(`project ${projectId}`);
      return {
        capsules: (rows!.results as unknown as CapsuleRow[]).map(capsuleMessage),
        total: BigInt(total!.results[0]!.n as number),
      };
    },
  },
);
