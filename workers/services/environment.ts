/** api.v1.environment.Service: deployment targets, each owned by an EnvironmentDO. */
import { Service } from "../../proto/gen/api/v1/environment/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

const environment = scoped<{ environmentId?: string }>("environment", "environmentId");

export const environments = notYetImplemented(Service, {
  // Creating an ephemeral environment needs only environment:edit:ephemeral (checked by the handler).
  create: { action: "environment:edit", scope: environment },
  update: { action: "environment:edit", scope: environment },
  delete: { action: "environment:edit", scope: environment },
  // Lists show only the environments the caller may view.
  list: { action: "environment:view" },
  getNamespaces: { action: "environment:view" },
});
