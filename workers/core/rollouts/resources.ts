/**
 * The Kubernetes objects a rollout stands for, as YAML: what Deploy returns as `resource_yaml`
 * (for a dry run especially). Shapes follow what Rig's operator creates for a capsule; nothing
 * here is applied to a cluster, so rendering is pure and never fails on a sparse config.
 */
import { base64Encode } from "@bufbuild/protobuf/wire";
import { stringify } from "yaml";
import {
  type ContainerSettings,
  type CustomMetric,
  EnvironmentSource_Kind,
  type HorizontalScale,
  type InterfaceProbe,
  type ResourceList,
} from "../../../proto/gen/api/v1/capsule/change_pb";
import type { CronJob } from "../../../proto/gen/api/v1/capsule/job_pb";
import type { ConfigFile, RolloutConfig } from "../../../proto/gen/api/v1/capsule/rollout_pb";

/** Where the rollout runs: the capsule, its environment, and the namespace its objects live in. */
export interface RenderTarget {
  projectId: string;
  capsuleId: string;
  environmentId: string;
  namespace: string;
}

type Obj = Record<string, unknown>;

/** What an HTTP cron job runs; the URL is its only argument besides the flags. */
const CURL_IMAGE = "quay.io/curl/curl:latest";

/**
 * Renders `config` as Kubernetes objects, keyed `"<Kind>/<name>"` (`"Deployment/web"`): a
 * Deployment always, then a Service, ConfigMap, Secret, HorizontalPodAutoscaler and CronJobs
 * when the config calls for them. Keys and map entries come in a fixed order, so equal configs
 * render to equal strings.
 */
export function renderResources(target: RenderTarget, config: RolloutConfig): Record<string, string> {
  const name = target.capsuleId;
  const labels = { "rig.dev/capsule": name, "rig.dev/environment": target.environmentId };
  const annotations = sortedMap(config.annotations);
  const meta = (objectName: string, objectLabels: Record<string, string> = labels) => ({
    name: objectName,
    namespace: target.namespace,
    labels: objectLabels,
    annotations,
  });
  const interfaces = config.network?.interfaces ?? [];
  const files = [...config.configFiles].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const plain = keyed(files.filter((f) => !f.isSecret));
  const secret = keyed(files.filter((f) => f.isSecret));

  const volumes = [
    plain.length ? { name: "config-files", configMap: { name } } : undefined,
    secret.length ? { name: "secret-files", secret: { secretName: name } } : undefined,
  ].filter(Boolean);
  const volumeMounts = [
    ...plain.map(([key, f]) => ({ name: "config-files", mountPath: f.path, subPath: key, readOnly: true })),
    ...secret.map(([key, f]) => ({ name: "secret-files", mountPath: f.path, subPath: key, readOnly: true })),
  ].sort((a, b) => (a.mountPath < b.mountPath ? -1 : 1));
  const settings = config.containerSettings;
  const base = { ...containerBase(name, config.imageId, settings), volumeMounts: nonEmpty(volumeMounts) };
  const probe = (kind: "liveness" | "readiness") => {
    const inf = interfaces.find((i) => i[kind]);
    return inf && probeOf(inf[kind]!, inf.port);
  };
  const scale = config.horizontalScale;
  const autoscaled = !!scale && scale.maxReplicas > 0;

  const out: Record<string, Obj> = {};
  out[`Deployment/${name}`] = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: meta(name),
    spec: {
      // With an autoscaler the HPA owns the count; a fixed one would fight it on every apply.
      replicas: autoscaled ? undefined : config.replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels, annotations },
        spec: {
          containers: [
            {
              ...base,
              ports: nonEmpty(interfaces.map((i) => ({ name: portName(i.name), containerPort: i.port, protocol: "TCP" }))),
              livenessProbe: probe("liveness"),
              readinessProbe: probe("readiness"),
            },
          ],
          volumes: nonEmpty(volumes),
        },
      },
    },
  };
  if (interfaces.length) {
    out[`Service/${name}`] = {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta(name),
      spec: {
        type: "ClusterIP",
        selector: labels,
        ports: interfaces.map((i) => ({ name: i.name, port: i.port, targetPort: i.port, protocol: "TCP" })),
      },
    };
  }
  if (plain.length) {
    const data: Record<string, string> = {};
    const binaryData: Record<string, string> = {};
    for (const [key, f] of plain) {
      const text = utf8(f.content);
      // ConfigMap `data` must be UTF-8; anything else goes, base64, in `binaryData`.
      if (text === undefined) binaryData[key] = base64Encode(f.content);
      else data[key] = text;
    }
    out[`ConfigMap/${name}`] = { apiVersion: "v1", kind: "ConfigMap", metadata: meta(name), data: nonEmptyMap(data), binaryData: nonEmptyMap(binaryData) };
  }
  if (secret.length) {
    const data = Object.fromEntries(secret.map(([key, f]) => [key, base64Encode(f.content)]));
    out[`Secret/${name}`] = { apiVersion: "v1", kind: "Secret", metadata: meta(name), type: "Opaque", data };
  }
  if (autoscaled) {
    out[`HorizontalPodAutoscaler/${name}`] = {
      apiVersion: "autoscaling/v2",
      kind: "HorizontalPodAutoscaler",
      metadata: meta(name),
      spec: {
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
        minReplicas: scale.minReplicas || undefined,
        maxReplicas: scale.maxReplicas,
        metrics: nonEmpty(metricsOf(scale)),
      },
    };
  }
  const jobs = [...config.cronJobs].sort((a, b) => (a.jobName < b.jobName ? -1 : 1));
  for (const job of jobs) {
    const jobName = `${name}-${job.jobName}`;
    // Not the capsule's own labels: the Deployment's and Service's selectors would match these pods.
    const podLabels = { "rig.dev/cron-job": job.jobName, "rig.dev/environment": target.environmentId, "rig.dev/job-capsule": name };
    const command = job.jobType.case === "command" ? job.jobType.value : undefined;
    out[`CronJob/${jobName}`] = {
      apiVersion: "batch/v1",
      kind: "CronJob",
      metadata: meta(jobName),
      spec: {
        schedule: job.schedule,
        jobTemplate: {
          spec: {
            backoffLimit: job.maxRetries,
            activeDeadlineSeconds: deadlineOf(job),
            template: {
              metadata: { labels: podLabels },
              spec: {
                restartPolicy: "Never",
                containers: [
                  command
                    ? { ...base, command: [command.command], args: nonEmpty(command.args) }
                    : { name: job.jobName, image: CURL_IMAGE, command: ["curl"], args: ["--fail", "--silent", "--show-error", urlOf(name, job)] },
                ],
                volumes: command ? nonEmpty(volumes) : undefined,
              },
            },
          },
        },
      },
    };
  }
  // No aliases: the same labels object appears in several places and must be spelled out each time.
  const options = { aliasDuplicateObjects: false, lineWidth: 0 };
  return Object.fromEntries(Object.entries(out).map(([key, obj]) => [key, stringify(obj, options)]));
}

/** The main container without ports and probes, which cron job commands reuse. */
function containerBase(name: string, image: string, settings: ContainerSettings | undefined): Obj {
  const env = sortedMap(settings?.environmentVariables ?? {});
  const envFrom = (settings?.environmentSources ?? []).map((s) =>
    s.kind === EnvironmentSource_Kind.SECRET ? { secretRef: { name: s.name } } : { configMapRef: { name: s.name } },
  );
  const { requests, limits, gpuLimits } = settings?.resources ?? {};
  let limitList = quantities(limits);
  if (gpuLimits?.count && gpuLimits.type) (limitList ??= {})[gpuLimits.type] = String(gpuLimits.count);
  const resources = { requests: quantities(requests), limits: limitList };
  return {
    name,
    image: image || undefined,
    command: settings?.command ? [settings.command] : undefined,
    args: nonEmpty(settings?.args ?? []),
    env: env && Object.entries(env).map(([k, value]) => ({ name: k, value })),
    envFrom: nonEmpty(envFrom),
    resources: resources.requests || resources.limits ? resources : undefined,
  };
}

/** CPU in millicores and memory in bytes as Kubernetes quantities; zero means unset. */
function quantities(list: ResourceList | undefined): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  if (list?.cpuMillis) out.cpu = `${list.cpuMillis}m`;
  if (list?.memoryBytes) out.memory = String(list.memoryBytes);
  return nonEmptyMap(out);
}

/** Probes use the port number: a named port must be a valid IANA service name, which not every interface name is. */
function probeOf(probe: InterfaceProbe, port: number): Obj | undefined {
  switch (probe.kind.case) {
    case "http":
      return { httpGet: { path: probe.kind.value.path || "/", port } };
    case "tcp":
      return { tcpSocket: { port } };
    case "grpc":
      return { grpc: { port, service: probe.kind.value.service || undefined } };
    default:
      return undefined;
  }
}

/** Container port names are IANA service names (15 characters at most), stricter than interface names. */
function portName(name: string): string | undefined {
  return name.length <= 15 && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) && /[a-z]/.test(name) ? name : undefined;
}

function metricsOf(scale: HorizontalScale): Obj[] {
  const metrics: Obj[] = [];
  const cpu = scale.cpuTarget?.averageUtilizationPercentage;
  if (cpu) metrics.push({ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: cpu } } });
  for (const m of scale.customMetrics) metrics.push(...customMetric(m));
  return metrics;
}

function customMetric({ metric }: CustomMetric): Obj[] {
  if (!metric.case) return [];
  const v = metric.value;
  const selector = nonEmptyMap(sortedMap(v.matchLabels) ?? {});
  const id = { name: v.metricName, selector: selector && { matchLabels: selector } };
  if (metric.case === "instance") {
    return [{ type: "Pods", pods: { metric: id, target: { type: "AverageValue", averageValue: v.averageValue } } }];
  }
  const ref = metric.value.objectReference;
  const target = metric.value.value ? { type: "Value", value: metric.value.value } : { type: "AverageValue", averageValue: v.averageValue };
  return [{ type: "Object", object: { describedObject: { apiVersion: ref?.apiVersion || undefined, kind: ref?.kind, name: ref?.name }, metric: id, target } }];
}

/** The capsule's own Service, reached by its name from inside the namespace. */
function urlOf(service: string, job: CronJob): string {
  if (job.jobType.case !== "url") return "";
  const { port, path, queryParameters } = job.jobType.value;
  const query = new URLSearchParams(Object.entries(sortedMap(queryParameters) ?? {})).toString();
  return `http://${service}:${port}${path}${query ? `?${query}` : ""}`;
}

/** Whole seconds, rounded up so a sub-second timeout still bounds the run. */
function deadlineOf(job: CronJob): number | undefined {
  if (!job.timeout) return undefined;
  const seconds = Math.ceil(Number(job.timeout.seconds) + job.timeout.nanos / 1e9);
  return seconds > 0 ? seconds : undefined;
}

/**
 * Files with their ConfigMap/Secret keys: the path made into a valid key (`[-._a-zA-Z0-9]`,
 * 253 characters at most), with a numeric suffix when two paths come out the same.
 */
function keyed(files: ConfigFile[]): [string, ConfigFile][] {
  const used = new Set<string>();
  return files.map((f) => {
    const base = f.path.replace(/^\/+/, "").replace(/[^-._a-zA-Z0-9]/g, "_").slice(0, 240) || "file";
    let key = base;
    for (let n = 2; used.has(key) || key === "." || key === ".."; n++) key = `${base}-${n}`;
    used.add(key);
    return [key, f];
  });
}

function utf8(bytes: Uint8Array): string | undefined {
  try {
    // ignoreBOM keeps a leading byte-order mark, which is part of the file.
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** A copy with keys in order, since proto maps keep whatever order they were built or decoded in. */
function sortedMap(map: Record<string, string>): Record<string, string> | undefined {
  const keys = Object.keys(map).sort();
  return keys.length ? Object.fromEntries(keys.map((k) => [k, map[k]!])) : undefined;
}

const nonEmpty = <T>(list: T[]): T[] | undefined => (list.length ? list : undefined);
const nonEmptyMap = <T>(map: Record<string, T>): Record<string, T> | undefined => (Object.keys(map).length ? map : undefined);
