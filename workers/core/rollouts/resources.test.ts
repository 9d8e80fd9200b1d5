import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { EnvironmentSource_Kind } from "../../../proto/gen/api/v1/capsule/change_pb";
import { RolloutConfigSchema } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { renderResources } from "./resources";

const target = { projectId: "acme", capsuleId: "web", environmentId: "prod", namespace: "acme-prod" };
const text = (s: string) => new TextEncoder().encode(s);

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked freely in assertions.
type Any = any;

function render(init: MessageInitShape<typeof RolloutConfigSchema>): Record<string, Any> {
  const yamls = renderResources(target, create(RolloutConfigSchema, init));
  return Object.fromEntries(Object.entries(yamls).map(([k, v]) => [k, parse(v)]));
}

const full: MessageInitShape<typeof RolloutConfigSchema> = {
  replicas: 3,
  imageId: "index.docker.io/library/nginx:1.25",
  annotations: { "example.com/team": "core" },
  network: {
    interfaces: [
      { name: "http", port: 8080, liveness: { kind: { case: "http", value: { path: "/healthz" } } } },
      { name: "metrics-exporter-port", port: 9090, readiness: { kind: { case: "tcp", value: {} } } },
    ],
  },
  containerSettings: {
    command: "/bin/server",
    args: ["--serve"],
    environmentVariables: { Z_LAST: "z", LOG_LEVEL: "info" },
    environmentSources: [{ kind: EnvironmentSource_Kind.SECRET, name: "db-credentials" }],
    resources: { requests: { cpuMillis: 500, memoryBytes: 268435456n }, limits: { cpuMillis: 1000 } },
  },
  configFiles: [
    { path: "/etc/app/config.yaml", content: text("a: 1\n") },
    { path: "/etc/app/token", content: text("s3cret"), isSecret: true },
  ],
  cronJobs: [
    { jobName: "ping", schedule: "*/5 * * * *", maxRetries: 2, timeout: { seconds: 30n }, jobType: { case: "url", value: { port: 8080n, path: "/tick", queryParameters: { b: "2", a: "x y" } } } },
    { jobName: "cleanup", schedule: "0 3 * * *", jobType: { case: "command", value: { command: "cleanup", args: ["--all"] } } },
  ],
};

describe("renderResources", () => {
  it("renders the Deployment with image, replicas, command, env, resources, ports and probes", () => {
    const out = render(full);
    expect(Object.keys(out)).toEqual(["Deployment/web", "Service/web", "ConfigMap/web", "Secret/web", "CronJob/web-cleanup", "CronJob/web-ping"]);
    const d = out["Deployment/web"];
    expect(d.metadata).toEqual({
      name: "web",
      namespace: "acme-prod",
      labels: { "rig.dev/capsule": "web", "rig.dev/environment": "prod" },
      annotations: { "example.com/team": "core" },
    });
    expect(d.spec.replicas).toBe(3);
    expect(d.spec.selector.matchLabels).toEqual(d.spec.template.metadata.labels);
    const [c] = d.spec.template.spec.containers;
    expect(c.image).toBe("index.docker.io/library/nginx:1.25");
    expect(c.command).toEqual(["/bin/server"]);
    expect(c.args).toEqual(["--serve"]);
    expect(c.env).toEqual([{ name: "LOG_LEVEL", value: "info" }, { name: "Z_LAST", value: "z" }]);
    expect(c.envFrom).toEqual([{ secretRef: { name: "db-credentials" } }]);
    expect(c.resources).toEqual({ requests: { cpu: "500m", memory: "268435456" }, limits: { cpu: "1000m" } });
    // The second name is too long for a container port name, so that port goes unnamed.
    expect(c.ports).toEqual([{ name: "http", containerPort: 8080, protocol: "TCP" }, { containerPort: 9090, protocol: "TCP" }]);
    expect(c.livenessProbe).toEqual({ httpGet: { path: "/healthz", port: 8080 } });
    expect(c.readinessProbe).toEqual({ tcpSocket: { port: 9090 } });
    expect(c.volumeMounts).toEqual([
      { name: "config-files", mountPath: "/etc/app/config.yaml", subPath: "etc_app_config.yaml", readOnly: true },
      { name: "secret-files", mountPath: "/etc/app/token", subPath: "etc_app_token", readOnly: true },
    ]);
  });

  it("renders a Service for the interfaces and keeps secrets out of the ConfigMap", () => {
    const out = render(full);
    expect(out["Service/web"].spec.ports).toEqual([
      { name: "http", port: 8080, targetPort: 8080, protocol: "TCP" },
      { name: "metrics-exporter-port", port: 9090, targetPort: 9090, protocol: "TCP" },
    ]);
    expect(out["ConfigMap/web"].data).toEqual({ "etc_app_config.yaml": "a: 1\n" });
    expect(JSON.stringify(out["ConfigMap/web"])).not.toContain("s3cret");
    expect(out["Secret/web"].data).toEqual({ etc_app_token: btoa("s3cret") });
    const binary = render({ configFiles: [{ path: "/bin/blob", content: new Uint8Array([0xff, 0x00]) }] })["ConfigMap/web"];
    expect([binary.data, binary.binaryData]).toEqual([undefined, { bin_blob: "/wA=" }]);
  });

  it("renders cron jobs calling the capsule or running a command", () => {
    const out = render(full);
    const ping = out["CronJob/web-ping"].spec;
    expect(ping.schedule).toBe("*/5 * * * *");
    expect(ping.jobTemplate.spec.backoffLimit).toBe(2);
    expect(ping.jobTemplate.spec.activeDeadlineSeconds).toBe(30);
    expect(ping.jobTemplate.spec.template.spec.containers[0].args.at(-1)).toBe("http://web:8080/tick?a=x+y&b=2");
    const cleanup = out["CronJob/web-cleanup"].spec.jobTemplate.spec;
    expect(cleanup.backoffLimit).toBe(0);
    expect(cleanup.activeDeadlineSeconds).toBeUndefined();
    const [c] = cleanup.template.spec.containers;
    expect([c.image, c.command, c.args]).toEqual(["index.docker.io/library/nginx:1.25", ["cleanup"], ["--all"]]);
    // Job pods must not match the Service's selector.
    expect(cleanup.template.metadata.labels["rig.dev/capsule"]).toBeUndefined();
  });

  it("adds an autoscaler only when scaling is set, which then owns the replica count", () => {
    expect(Object.keys(render(full))).not.toContain("HorizontalPodAutoscaler/web");
    const out = render({ ...full, horizontalScale: { minReplicas: 2, maxReplicas: 5, cpuTarget: { averageUtilizationPercentage: 70 } } });
    const hpa = out["HorizontalPodAutoscaler/web"];
    expect(hpa.spec).toEqual({
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "web" },
      minReplicas: 2,
      maxReplicas: 5,
      metrics: [{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } }],
    });
    expect(out["Deployment/web"].spec.replicas).toBeUndefined();
  });

  it("renders just a Deployment for a first config without an image", () => {
    const out = render({ replicas: 1 });
    expect(Object.keys(out)).toEqual(["Deployment/web"]);
    const d = out["Deployment/web"];
    expect(d.spec.replicas).toBe(1);
    expect(d.spec.template.spec.containers).toEqual([{ name: "web" }]);
    expect(d.metadata.annotations).toBeUndefined();
  });

  it("is deterministic whatever order maps were built in", () => {
    const reordered = { ...full, annotations: { "example.com/team": "core" }, containerSettings: { ...full.containerSettings, environmentVariables: { LOG_LEVEL: "info", Z_LAST: "z" } } };
    const a = renderResources(target, create(RolloutConfigSchema, full));
    expect(renderResources(target, create(RolloutConfigSchema, reordered))).toEqual(a);
    expect(Object.keys(renderResources(target, create(RolloutConfigSchema, full)))).toEqual(Object.keys(a));
    // Shared objects (labels) are written out, not as YAML anchors and aliases.
    expect(a["Deployment/web"]).not.toMatch(/[&*]a\d/);
  });
});
