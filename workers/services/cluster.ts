/** api.v1.cluster.Service: the clusters capsules run on. */
import { Service } from "../../proto/gen/api/v1/cluster/service_pb";
import { scoped } from "../auth/scopes";
import { notYetImplemented } from "./registry";

export const clusters = notYetImplemented(Service, {
  list: { action: "clusterconfig:view" },
  getConfig: { action: "clusterconfig:view", scope: scoped<{ environmentId?: string }>("clusterconfig") },
  getConfigs: { action: "clusterconfig:view" },
});
