/** api.v1.capsule.Service: capsules, deploys and rollouts, instances, logs, cron jobs. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { capsuleScope, scoped } from "../auth/scopes";
import {
  type CapsuleRow,
  insertCapsule,
  listCapsulesPage,
  namedCapsule,
  projectOf,
  requireCapsule,
  touchCapsule,
} from "../d1/capsules";
import { deleteCapsule } from "../d1/cascades";
import { envOf, principalOf } from "./context";
import { alreadyExists, bounded, failedPrecondition, notFound } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { pageOf } from "../core/pagination";
import { instanceHandlers } from "./capsule-instances";
import { jobHandlers } from "./capsule-jobs";
import { rolloutHandlers, rolloutScope } from "./capsule-rollouts";
import { defineService } from "./registry";
import { authorOf } from "./user-messages";

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
      // `initializers` are the specification's deprecated Update messages, which carry no fields.
      const { projectFound, inserted } = await insertCapsule(env, { projectId, id, updatedBy: JSON.stringify(authorOf(principalOf(ctx))), now: Date.now() });
      if (!projectFound) throw notFound(`project ${bounded(projectId)}`);
      if (!inserted) throw alreadyExists(`capsule ${bounded(id)} in project ${bounded(projectId)}`);
      return { capsuleId: id };
    },

    async get(req, ctx) {
      const { projectId, capsuleId } = namedCapsule(req);
      return { capsule: capsuleMessage(await requireCapsule(envOf(ctx), projectId, capsuleId)) };
    },

    async delete(req, ctx) {
      const { projectId, capsuleId } = namedCapsule(req);
      // One transaction: no image outlives its capsule, and a capsule still deployed somewhere stays.
      const { deployedIn, deleted } = await deleteCapsule(envOf(ctx), projectId, capsuleId);
      if (deployedIn) throw failedPrecondition(`capsule ${capsuleId} is deployed in ${deployedIn}: stop its rollouts there first`);
      if (!deleted) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
      return {};
    },

    async update(req, ctx) {
      const { projectId, capsuleId } = namedCapsule(req);
      // The specification's Update message carries no fields ("deprecated, now a no-op"): the
      // call only confirms that the capsule exists and records who touched it and when.
      if (!(await touchCapsule(envOf(ctx), projectId, capsuleId, JSON.stringify(authorOf(principalOf(ctx))), Date.now()))) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);
      return {};
    },

    async list(req, ctx) {
      const projectId = projectOf(req);
      const { projectFound, rows, total } = await listCapsulesPage(envOf(ctx), projectId, pageOf(req.pagination));
      if (!projectFound) throw notFound(`project ${bounded(projectId)}`);
      return { capsules: rows.map(capsuleMessage), total };
    },
  },
);
