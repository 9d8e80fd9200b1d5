/** api.v1.capsule.Service: capsules, deploys and rollouts, instances, logs, cron jobs. */
import { Service } from "../../proto/gen/api/v1/capsule/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const capsule = scoped<{ capsuleId?: string; projectId?: string; environmentId?: string }>("capsule", "capsuleId");
const anyCapsule = scoped("capsule");

export const capsules = notYetImplemented(Service, {
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
});
