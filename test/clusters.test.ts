import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ClusterType, GetConfigResponseSchema, Service as ClusterService } from "../proto/gen/api/v1/cluster/service_pb";
import { Service as SettingsService } from "../proto/gen/api/v1/user/settings/service_pb";
import { clustersOf, configOf } from "../workers/services/cluster";
import { errorOf } from "./helpers/errors";
import { client } from "./helpers/client";
import { fileAdmin, freshEmail, register } from "./helpers/identity";

let admin: Awaited<ReturnType<typeof fileAdmin>>;
const clusters = () => client(ClusterService, admin.accessToken);

beforeAll(async () => {
  admin = await fileAdmin();
  await client(SettingsService, admin.accessToken).updateSettings({ settings: [{ field: { case: "allowRegister", value: true } }] });
  await env.DB.prepare(
    `INSERT INTO environments (id, cluster_id, namespace_template, created_at, updated_at)
     VALUES ('dev', 'local', '{{ .Project.Name }}', 0, 0), ('orphan', 'gone', '{{ .Project.Name }}', 0, 0)`,
  ).run();
});

describe("cluster.Service with the default configuration", () => {
  it("lists the one local Docker cluster", async () => {
    expect((await clusters().list({})).clusters.map((c) => c.clusterId)).toEqual(["local"]);
    expect((await clusters().list({ pagination: { offset: 1 } })).clusters).toEqual([]);
    const configs = await clusters().getConfigs({});
    expect(configs.clusters).toHaveLength(1);
    expect(configs.clusters[0]!.clusterType).toBe(ClusterType.DOCKER);
    expect(configs.clusters[0]!.devRegistry.case).toBe("docker");
    expect(configs.clusters[0]!.ingress).toBe(false);
  });

  it("finds an environment's cluster", async () => {
    const cfg = await clusters().getConfig({ environmentId: "dev" });
    expect(cfg.clusterType).toBe(ClusterType.DOCKER);
    expect(cfg.devRegistry.case).toBe("docker");
  });

  it("refuses unknown environments and environments whose cluster is gone", async () => {
    expect((await errorOf(clusters().getConfig({ environmentId: "nowhere" }))).code).toBe(Code.NotFound);
    expect((await errorOf(clusters().getConfig({ environmentId: "" }))).code).toBe(Code.InvalidArgument);
    const err = await errorOf(clusters().getConfig({ environmentId: "orphan" }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("cluster gone");
    expect(err.rawMessage).toContain("no longer configured");
  });

  it("needs clusterconfig:view", async () => {
    const nobody = client(ClusterService, (await register(freshEmail("nobody"))).token!.accessToken);
    expect((await errorOf(nobody.list({}))).code).toBe(Code.PermissionDenied);
    expect((await errorOf(nobody.getConfigs({}))).code).toBe(Code.PermissionDenied);
    expect((await errorOf(nobody.getConfig({ environmentId: "dev" }))).code).toBe(Code.PermissionDenied);
  });
});

describe("the CLUSTERS var", () => {
  const configured = [
    { id: "edge", type: "kubernetes", devRegistryHost: "registry.example.com:5000", ingress: true },
    { id: "k8s", type: "kubernetes" },
    { id: "box", type: "docker", devRegistryHost: "localhost:5000" },
  ];

  it("is read as JSON text or as an array", () => {
    expect(clustersOf({ CLUSTERS: JSON.stringify(configured) }).map((c) => c.id)).toEqual(["edge", "k8s", "box"]);
    expect(clustersOf({ CLUSTERS: configured as never }).map((c) => c.id)).toEqual(["edge", "k8s", "box"]);
    expect(clustersOf({})).toEqual([{ id: "local", type: "docker" }]);
  });

  it("maps to cluster configs: registry when set, else the Docker daemon on Docker", () => {
    const [edge, k8s, box] = clustersOf({ CLUSTERS: JSON.stringify(configured) }).map((c) => create(GetConfigResponseSchema, configOf(c)));
    expect(edge!.clusterType).toBe(ClusterType.KUBERNETES);
    expect(edge!.devRegistry).toMatchObject({ case: "registry", value: { host: "registry.example.com:5000" } });
    expect(edge!.ingress).toBe(true);
    expect(k8s!.clusterType).toBe(ClusterType.KUBERNETES);
    expect(k8s!.devRegistry.case).toBeUndefined();
    expect(box!.clusterType).toBe(ClusterType.DOCKER);
    expect(box!.devRegistry).toMatchObject({ case: "registry", value: { host: "localhost:5000" } });
  });

  it("fails with failed_precondition, naming the problem, when it is broken", () => {
    for (const [value, problem] of [
      ["{", "not JSON"],
      ['{"id":"x"}', "not an array"],
      ['[{"type":"docker"}]', "no id"],
      ['[{"id":"a","type":"nomad"}]', "type must be"],
      ['[{"id":"a","type":"docker"},{"id":"a","type":"docker"}]', "appears twice"],
      ['[{"id":"a","type":"docker","ingress":"yes"}]', "ingress"],
      ['[{"id":"a","type":"docker","devRegistryHost":5}]', "devRegistryHost"],
      ["[null]", "not an object"],
    ]) {
      let err: ConnectError | undefined;
      try {
        clustersOf({ CLUSTERS: value });
      } catch (e) {
        err = ConnectError.from(e);
      }
      expect(err?.code, value).toBe(Code.FailedPrecondition);
      expect(err?.rawMessage, value).toContain(problem);
    }
  });
});
