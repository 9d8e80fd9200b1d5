/** api.v1.project.Service: projects, the top-level grouping of capsules. */
import { Service } from "../../proto/gen/api/v1/project/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const project = scoped<{ projectId?: string }>("project", "projectId");

export const projects = notYetImplemented(Service, {
  create: { action: "project:edit", scope: project },
  delete: { action: "project:edit", scope: project },
  get: { action: "project:view", scope: project },
  // Lists show only the projects the caller may view.
  list: { action: "project:view" },
  update: { action: "project:edit", scope: project },
  publicKey: { action: "project:view", scope: project },
  getObjectsByKind: { action: "project:view", scope: project },
  getCustomObjectMetrics: { action: "project:view", scope: project },
});
