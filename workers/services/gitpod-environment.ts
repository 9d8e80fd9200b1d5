/**
 * gitpod.v1.EnvironmentService: developer environments. Each is an ephemeral Rig
 * environment, so changing one needs `environment:edit:ephemeral`.
 */
import { EnvironmentService } from "../../proto/gen/gitpod/v1/environment_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const environment = scoped<{ environmentId?: string }>("environment", "environmentId");
const anyEnvironment = scoped("environment");
const view = { action: "environment:view", scope: environment };
const edit = { action: "environment:edit:ephemeral", scope: environment };

export const gitpodEnvironments = notYetImplemented(EnvironmentService, {
  getEnvironment: view,
  listEnvironments: { action: "environment:view", scope: anyEnvironment },
  listEnvironmentClasses: { action: "environment:view", scope: anyEnvironment },
  createEnvironment: { action: "environment:edit:ephemeral", scope: anyEnvironment },
  createEnvironmentFromProject: { action: "environment:edit:ephemeral", scope: anyEnvironment },
  startEnvironment: edit,
  stopEnvironment: edit,
  updateEnvironment: edit,
  deleteEnvironment: edit,
  createEnvironmentLogsToken: view,
  createEnvironmentAccessToken: edit,
  markEnvironmentActive: edit,
  unarchiveEnvironment: edit,
});
