/** api.v1.cluster.Service: the clusters capsules run on. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ClusterType, type GetConfigResponseSchema, Service } from "../../proto/gen/api/v1/cluster/service_pb";
import { scoped } from "../auth/scopes";
import { defaults } from "../core/config";
import { clusterOfEnvironment } from "../d1/environments";
import type { Env } from "../env";
import type { ClusterConfig } from "../core/config";
import { envOf } from "./context";
import { bounded, failedPrecondition, invalidArgument, notFound } from "../core/errors";
import { pageOf } from "../core/pagination";
import { defineService } from "./registry";

const invalidConfig = (problem: string) =>
  failedPrecondition(`the CLUSTERS var is not valid (${problem}): an operator must fix it in wrangler.toml`);

/**
 * The configured clusters. Clusters are configured by the operator, not created through the
 * API, so a broken CLUSTERS var is a precondition that fails, never a bad request.
 */
export function clustersOf(env: Pick<Env, "CLUSTERS">): readonly ClusterConfig[] {
  if (env.CLUSTERS === undefined || env.CLUSTERS === "") return defaults.clusters;
  let value: unknown = env.CLUSTERS;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      throw invalidConfig("not JSON");
    }
  }
  if (!Array.isArray(value)) throw invalidConfig("not an array");
  const seen = new Set<string>();
  return value.map((c: Partial<ClusterConfig> | null, i) => {
    if (typeof c !== "object" || c === null) throw invalidConfig(`entry ${i} is not an object`);
    if (typeof c.id !== "string" || !c.id) throw invalidConfig(`entry ${i} has no id`);
    if (seen.has(c.id)) throw invalidConfig(`cluster ${c.id} appears twice`);
    seen.add(c.id);
    if (c.type !== "docker" && c.type !== "kubernetes") throw invalidConfig(`cluster ${c.id}: type must be "docker" or "kubernetes"`);
    if (c.devRegistryHost !== undefined && typeof c.devRegistryHost !== "string") throw invalidConfig(`cluster ${c.id}: devRegistryHost must be a string`);
    if (c.ingress !== undefined && typeof c.ingress !== "boolean") throw invalidConfig(`cluster ${c.id}: ingress must be true or false`);
    return { id: c.id, type: c.type, devRegistryHost: c.devRegistryHost || undefined, ingress: c.ingress };
  });
}

/** A cluster as clients see it: images go to the registry if one is set, else to the Docker daemon. */
export function configOf(c: ClusterConfig): MessageInitShape<typeof GetConfigResponseSchema> {
  return {
    clusterType: c.type === "docker" ? ClusterType.DOCKER : ClusterType.KUBERNETES,
    devRegistry: c.devRegistryHost
      ? { case: "registry", value: { host: c.devRegistryHost } }
      : c.type === "docker"
        ? { case: "docker", value: {} }
        : { case: undefined },
    ingress: c.ingress ?? false,
  };
}

export const clusters = defineService(
  Service,
  {
    list: { action: "clusterconfig:view" },
    getConfig: { action: "clusterconfig:view", scope: scoped<{ environmentId?: string }>("clusterconfig") },
    getConfigs: { action: "clusterconfig:view" },
  },
  {
    list(req, ctx) {
      const page = pageOf(req.pagination);
      const all = clustersOf(envOf(ctx));
      const ordered = page.descending ? [...all].reverse() : all;
      return { clusters: ordered.slice(page.offset, page.offset + page.limit).map((c) => ({ clusterId: c.id })) };
    },

    async getConfig(req, ctx) {
      const env = envOf(ctx);
      if (!req.environmentId) throw invalidArgument("environment_id", "is required");
      const clusterId = await clusterOfEnvironment(env, req.environmentId);
      if (clusterId === null) throw notFound(`environment ${bounded(req.environmentId)}`);
      const cluster = clustersOf(env).find((c) => c.id === clusterId);
      if (!cluster) {
        throw failedPrecondition(
          `environment ${req.environmentId} runs on cluster ${clusterId}, which is no longer configured: add it back to the CLUSTERS var or move the environment`,
        );
      }
      return configOf(cluster);
    },

    getConfigs(_req, ctx) {
      return { clusters: clustersOf(envOf(ctx)).map(configOf) };
    },
  },
);
