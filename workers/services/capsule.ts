/** api.v1.capsule.Service: capsules, deploys and rollouts, instances, logs, cron jobs. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { capsuleScope, scoped } from "../auth/scopes";
import { type CapsuleRow, namedCapsule, projectOf, requireCapsule } from "../d1/capsules";
import { envOf, principalOf } from "./context";
import { alreadyExists, bounded, failedPrecondition, notFound } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { pageOf } from "../core/pagination";
import { instanceHandlers } from "./capsule-instances";
import { jobHandlers } from "./capsule-jobs";
import { rolloutHandlers, rolloutScope } from "./capsule-rollouts";
import { defineService } from "./registry";
import { authorOf } from "./user-messages";
import { count, query, readBatch, total } from "../d1/batch";

const anyCapsule = scoped("capsule");

const capsuleMessage = (r: CapsuleRow) => ({
  capsuleId: r.id,
  updatedAt: timestampFromMs(r.updated_at),
  updatedBy: JSON.parse(r.updated_by) as ReturnType<typeof authorOf>,
});

export const capsules = defineService(
  Service,
  {
    create: { action: "capsule:create", scope: anyCapsule },
    get: { action: "capsule:view", scope: capsuleScope },
    delete: { action: "capsule:delete", scope: capsuleScope },
    logs: { action: "capsule:view", scope: capsuleScope },
    update: { action: "capsule:edit", scope: capsuleScope },
    list: { action: "capsule:view", scope: anyCapsule },
    // Each kind of change also needs its deploy sub-action, checked by the handler.
    deploy: { action: "capsule:deploy", scope: capsuleScope },
    listInstances: { action: "capsule:view", scope: capsuleScope },
    restartInstance: { action: "capsule:restartinstance", scope: capsuleScope },
    listRollouts: { action: "capsule:view", scope: capsuleScope },
    // These name a rollout: authorized in the environment it runs in.
    getRollout: { action: "capsule:view", scope: rolloutScope },
    abortRollout: { action: "capsule:abortrollout", scope: rolloutScope },
    stopRollout: { action: "capsule:stoprollout", scope: rolloutScope },
    listEvents: { action: "capsule:view", scope: rolloutScope },
    capsuleMetrics: { action: "capsule:view", scope: capsuleScope },
    getInstanceStatus: { action: "capsule:view", scope: capsuleScope },
    listInstanceStatuses: { action: "capsule:view", scope: capsuleScope },
    // Served over a WebSocket (its ticket route checks the scope); this handler only answers
    // unimplemented, pointing there, so a grant of the action anywhere may be told so.
    execute: { action: "capsule:execute", scope: "any" },
    getCustomInstanceMetrics: { action: "capsule:view", scope: capsuleScope },
    getJobExecutions: { action: "capsule:view", scope: capsuleScope },
  },
  {
    ...rolloutHandlers,
    ...instanceHandlers,
    ...jobHandlers,
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
      if (!project!.results.length) throw notFound(`project ${bounded(projectId)}`);
      if (inserted!.meta.changes === 0) throw alreadyExists(`capsule ${bounded(id)} in project ${bounded(projectId)}`);
      return { capsuleId: id };
    },

    async get(req, ctx) {
      const { projectId, capsuleId } = namedCapsule(req);
      return { capsule: capsuleMessage(await requireCapsule(envOf(ctx), projectId, capsuleId)) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const { projectId, capsuleId } = namedCapsule(req);
      // One transaction: no image outlives its capsule, and a capsule still deployed somewhere stays.
      const deployed = "EXISTS (SELECT 1 FROM deployments WHERE project_id = ?1 AND capsule_id = ?2)";
      const [where, deleted] = await env.DB.batch<Record<string, unknown>>([
        env.DB.prepare(`SELECT group_concat(environment_id, ', ') AS envs FROM deployments WHERE project_id = ?1 AND capsule_id = ?2`).bind(projectId, capsuleId),
        env.DB.prepare(`DELETE FROM capsules WHERE project_id = ?1 AND id = ?2 AND NOT ${deployed}`).bind(projectId, capsuleId),
        env.DB.prepare(`DELETE FROM images WHERE project_id = ?1 AND capsule_id = ?2 AND NOT ${deployed}`).bind(projectId, capsuleId),
      ]);
      const envs = where!.results[0]?.envs as string | null;
      if (envs) throw failedPrecondition(`capsule ${capsuleId} is deployed in ${envs}: stop its rollouts there first`);
      if (deleted!.meta.changes === 0) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
      return {};
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const { projectId, capsuleId } = namedCapsule(req);
      // The specification's Update message carries no fields ("deprecated, now a no-op"): the
      // call only confirms that the capsule exists and records who touched it and when.
      const res = await env.DB.prepare("UPDATE capsules SET updated_at = ?, updated_by = ? WHERE project_id = ? AND id = ?")
        .bind(Date.now(), JSON.stringify(authorOf(principalOf(ctx))), projectId, capsuleId)
        .run();
      if (res.meta.changes === 0) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const projectId = projectOf(req);
      const page = pageOf(req.pagination);
      const [project, rows, n] = await readBatch(
        env.DB,
        query<{ one: number }>(env.DB.prepare("SELECT 1 AS one FROM projects WHERE id = ?").bind(projectId)),
        query<CapsuleRow>(
          env.DB.prepare(`SELECT id, updated_by, updated_at FROM capsules WHERE project_id = ? ORDER BY id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`).bind(
            projectId,
            page.limit,
            page.offset,
          ),
        ),
        count(env.DB.prepare("SELECT COUNT(*) AS n FROM capsules WHERE project_id = ?").bind(projectId)),
      );
      if (!project.length) throw notFound(`project ${bounded(projectId)}`);
      return { capsules: rows.map(capsuleMessage), total: total(n) };
    },
  },
);
