/**
 * gitpod.v1.EnvironmentAutomationService: services, tasks and task executions of a
 * developer environment. Requests that name a service or task rather than the environment
 * have their environment resolved and checked by the handler.
 */
import { EnvironmentAutomationService } from "../../proto/gen/gitpod/v1/environment_automation_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const environment = scoped<{ environmentId?: string }>("environment", "environmentId");
const view = { action: "environment:view", scope: environment };
const edit = { action: "environment:edit:ephemeral", scope: environment };

export const gitpodAutomations = notYetImplemented(EnvironmentAutomationService, {
  upsertAutomationsFile: edit,
  createService: edit,
  getService: view,
  listServices: view,
  updateService: edit,
  deleteService: edit,
  startService: edit,
  stopService: edit,
  createTask: edit,
  getTask: view,
  listTasks: view,
  updateTask: edit,
  deleteTask: edit,
  startTask: edit,
  listTaskExecutions: view,
  getTaskExecution: view,
  stopTaskExecution: edit,
});
