/** proto.SkaffoldService: the dev loop of one environment, served under /environments/<id>/skaffold/. */
import { SkaffoldService } from "../../proto/gen/skaffold/v1/skaffold_pb";
import type { Scope } from "../auth/principal";
import { notYetImplemented } from "./registry";

/** The environment comes from the path, since Skaffold's messages do not name one. */
const environmentOfPath = (_: unknown, url: URL): Scope => {
  const id = /^\/environments\/([^/]+)\/skaffold\//.exec(url.pathname)?.[1];
  return { resource: `environment/${id ?? "*"}`, environment: id };
};
const view = { action: "environment:view", scope: environmentOfPath };
const edit = { action: "environment:edit:ephemeral", scope: environmentOfPath };

export const skaffold = notYetImplemented(SkaffoldService, {
  getState: view,
  eventLog: view,
  events: view,
  execute: edit,
  autoBuild: edit,
  autoSync: edit,
  autoDeploy: edit,
  handle: edit,
});
