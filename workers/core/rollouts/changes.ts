/**
 * A Deploy's Changes, applied in order to the previous rollout's configuration to make the next
 * one. Applying is pure: it builds a new RolloutConfig, never touches the previous one, and
 * throws `invalid_argument` naming the offending Change (`changes[3].add_cron_job.schedule`)
 * before anything could be committed.
 */
import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Change,
  type Change_ConfigFile,
  ChangeSchema,
  type ContainerSettings,
  ContainerSettingsSchema,
  type CustomMetric,
  type EnvironmentSource,
  EnvironmentSource_Kind,
  EnvironmentSourceSchema,
  type HorizontalScale,
  HorizontalScaleSchema,
  type Interface,
  type InterfaceProbe,
  InterfaceSchema,
  type Network,
  NetworkSchema,
  type ResourceList,
} from "../../../proto/gen/api/v1/capsule/change_pb";
import { type CronJob, CronJobSchema } from "../../../proto/gen/api/v1/capsule/job_pb";
import { ConfigFileSchema, type RolloutConfig, RolloutConfigSchema } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { AuthorSchema } from "../../../proto/gen/model/author_pb";
import type { deployKinds } from "../actions";
import { invalidArgument, quote } from "../errors";
import { checkDnsLabel } from "../names";
import { formatReference, parseReference } from "../image-reference";
import { checkCronSchedule } from "./cron";

/** What applying changes needs from the deploy but cannot know by itself. */
export interface ApplyContext {
  /** Who deploys: the new config's created_by, and updated_by of the config files it sets. */
  author: MessageInitShape<typeof AuthorSchema>;
  /** When the deploy happens, in ms since the epoch: created_at, and config files' updated_at. */
  now: number;
  /** The environment the rollout runs in. */
  environmentId: string;
  /** The deploy's message (DeployRequest.message); empty when absent. */
  message?: string;
  /**
   * The configuration of an earlier rollout of this capsule in this environment, for `rollback`.
   * Without it every rollback is refused, as if no rollout existed.
   */
  rollbackConfig?: (rolloutId: bigint) => RolloutConfig | undefined;
  /**
   * Whether the capsule has an image with this (normalized) id. Only `image_id` consults it:
   * `add_image` may name a new image, which the caller registers (as the result's image_id)
   * before it commits. Without it, image ids are not checked.
   */
  imageExists?: (imageId: string) => boolean;
}

type Kind = NonNullable<Change["field"]["case"]>;
type DeployKind = (typeof deployKinds)[number];

/** The permission each kind of change needs; a Record, so a new kind does not compile without one. */
const DEPLOY_KINDS: Record<Kind, DeployKind> = {
  replicas: "replica",
  imageId: "image",
  addImage: "image",
  network: "network",
  setInterface: "network",
  removeInterface: "network",
  containerSettings: "container",
  commandArguments: "container",
  autoAddRigServiceAccounts: "serviceaccount",
  setConfigFile: "configfiles",
  removeConfigFile: "configfiles",
  horizontalScale: "autoscale",
  rollback: "rollback",
  setEnvironmentVariable: "environmentvariables",
  removeEnvironmentVariable: "environmentvariables",
  setEnvironmentSource: "environmentsources",
  removeEnvironmentSource: "environmentsources",
  addCronJob: "cronjob",
  removeCronJob: "cronjob",
  setAnnotations: "annotations",
  setAnnotation: "annotations",
  removeAnnotation: "annotations",
};

/** The deploy sub-action (`capsule:deploy:<kind>`) a change needs; an empty change is invalid. */
export function deployKindOf(change: Change, field = "change"): DeployKind {
  const kind = change.field.case && DEPLOY_KINDS[change.field.case];
  if (!kind) throw invalidArgument(field, "sets no change: set exactly one of its fields");
  return kind;
}

/**
 * The configuration that results from applying `changes`, in order, to `previous` (none for a
 * capsule's first rollout). It records the changes and the context's author, time, environment
 * and message. Throws `invalid_argument` naming the first invalid change.
 */
export function applyChanges(previous: RolloutConfig | undefined, changes: Change[], context: ApplyContext): RolloutConfig {
  let config = previous ? clone(RolloutConfigSchema, previous) : create(RolloutConfigSchema);
  changes.forEach((change, i) => {
    const kind = change.field.case;
    // Errors name the change by its index and proto field: `changes[3].add_cron_job`.
    const field = kind ? `changes[${i}].${ChangeSchema.field[kind]!.name}` : `changes[${i}]`;
    config = applyChange(config, change, field, context);
  });
  config.createdBy = create(AuthorSchema, context.author);
  config.createdAt = timestampFromMs(context.now);
  config.changes = changes.map((c) => clone(ChangeSchema, c));
  config.environmentId = context.environmentId;
  config.message = context.message ?? "";
  return config;
}

/**
 * Applies one change to `config` (a private copy, so it is changed in place) and returns the
 * result. Values are checked before they are cloned into the config: clone throws a plain
 * error on an out-of-range number, which would surface as `internal`.
 */
function applyChange(config: RolloutConfig, change: Change, f: string, ctx: ApplyContext): RolloutConfig {
  const { field } = change;
  switch (field.case) {
    case "replicas":
      config.replicas = field.value;
      break;
    case "imageId":
      config.imageId = checkImageId(f, field.value, ctx);
      break;
    case "addImage":
      config.imageId = formatReference(parseReference(field.value.image, `${f}.image`));
      break;
    case "network":
      config.network = clone(NetworkSchema, checkNetwork(f, field.value));
      break;
    case "containerSettings":
      config.containerSettings = clone(ContainerSettingsSchema, checkContainerSettings(f, field.value));
      break;
    case "autoAddRigServiceAccounts":
      config.autoAddRigServiceAccounts = field.value;
      break;
    case "setConfigFile":
      setConfigFile(config, f, field.value, ctx);
      break;
    case "removeConfigFile":
      removeOne(config.configFiles, (c) => c.path === field.value, f, `no config file at ${field.value}`);
      break;
    case "horizontalScale":
      config.horizontalScale = clone(HorizontalScaleSchema, checkHorizontalScale(f, field.value));
      break;
    case "rollback":
      return rollback(f, field.value.rollbackId, ctx);
    case "setEnvironmentVariable":
      containerOf(config).environmentVariables[checkEnvName(`${f}.name`, field.value.name)] = field.value.value;
      break;
    case "removeEnvironmentVariable":
      checkEnvName(f, field.value);
      // Removing what is not there is a no-op, like `unset`: the result is what was asked for.
      if (config.containerSettings) delete config.containerSettings.environmentVariables[field.value];
      break;
    case "setEnvironmentSource":
      setEnvironmentSource(containerOf(config), f, field.value);
      break;
    case "removeEnvironmentSource": {
      const { kind, name } = checkEnvironmentSource(f, field.value);
      const container = config.containerSettings;
      if (container) container.environmentSources = container.environmentSources.filter((s) => s.kind !== kind || s.name !== name);
      break;
    }
    case "commandArguments":
      containerOf(config).command = field.value.command;
      containerOf(config).args = [...field.value.args];
      break;
    case "addCronJob":
      addCronJob(config, f, field.value);
      break;
    case "removeCronJob": {
      const name = field.value.jobName;
      removeOne(config.cronJobs, (j) => j.jobName === name, `${f}.job_name`, `no cron job named "${name}"`);
      break;
    }
    case "setInterface":
      setInterface(config, f, field.value);
      break;
    case "removeInterface":
      removeOne(config.network?.interfaces, (n) => n.name === field.value, f, `no interface named "${field.value}"`);
      break;
    case "setAnnotations":
      for (const key of Object.keys(field.value.annotations)) checkAnnotationKey(`${f}.annotations["${key}"]`, key);
      config.annotations = { ...field.value.annotations };
      break;
    case "setAnnotation":
      config.annotations[checkAnnotationKey(`${f}.name`, field.value.name)] = field.value.value;
      break;
    case "removeAnnotation":
      // A no-op when absent, as for environment variables.
      delete config.annotations[checkAnnotationKey(f, field.value)];
      break;
    case undefined:
      throw invalidArgument(f, "sets no change: set exactly one of its fields");
    default: {
      const unhandled: never = field;
      throw new Error(`unhandled kind of change: ${(unhandled as Change["field"]).case}`);
    }
  }
  return config;
}

/** Removes the one matching element; one that is not there is an error. */
function removeOne<T>(list: T[] | undefined, match: (t: T) => boolean, field: string, problem: string) {
  const index = list?.findIndex(match) ?? -1;
  if (index < 0) throw invalidArgument(field, problem);
  list!.splice(index, 1);
}

const containerOf = (config: RolloutConfig) => (config.containerSettings ??= create(ContainerSettingsSchema));

// Images.

function checkImageId(f: string, id: string, ctx: ApplyContext): string {
  if (!id) throw invalidArgument(f, "is required");
  // Ids are normalized references, so any spelling of one names the same image.
  const normalized = formatReference(parseReference(id, f));
  if (ctx.imageExists && !ctx.imageExists(normalized)) {
    throw invalidArgument(f, `image ${normalized} has not been added to the capsule: add it first, or deploy it with add_image`);
  }
  return normalized;
}

// Rollback.

function rollback(f: string, rolloutId: bigint, ctx: ApplyContext): RolloutConfig {
  if (rolloutId === 0n) throw invalidArgument(`${f}.rollback_id`, "is required");
  const target = ctx.rollbackConfig?.(rolloutId);
  if (!target) throw invalidArgument(`${f}.rollback_id`, `rollout ${rolloutId} does not exist`);
  // Its metadata (author, time, changes, message) is replaced by this deploy's in applyChanges.
  return clone(RolloutConfigSchema, target);
}

// Config files.

/** Kubernetes caps a ConfigMap or Secret at 1 MiB, so a bigger file could never be mounted. */
const CONFIG_FILE_MAX_BYTES = 1024 * 1024;

function setConfigFile(config: RolloutConfig, f: string, file: Change_ConfigFile, ctx: ApplyContext) {
  const path = checkFilePath(`${f}.path`, file.path);
  if (file.content.length > CONFIG_FILE_MAX_BYTES) throw invalidArgument(`${f}.content`, `is ${file.content.length} bytes; the limit is 1 MiB`);
  const next = create(ConfigFileSchema, {
    path,
    content: file.content.slice(),
    isSecret: file.isSecret,
    updatedBy: ctx.author,
    updatedAt: timestampFromMs(ctx.now),
  });
  const existing = config.configFiles.findIndex((c) => c.path === path);
  if (existing >= 0) config.configFiles[existing] = next;
  else config.configFiles.push(next);
}

/** An absolute, clean path to a file: `/etc/app/config.yaml`, not `etc/x`, `/a//b`, `/a/../b` or `/dir/`. */
function checkFilePath(f: string, path: string): string {
  if (!path.startsWith("/")) throw invalidArgument(f, `${quote(path)} is not an absolute path`);
  const segments = path.slice(1).split("/");
  if (segments.some((s) => s === "" || s === "." || s === "..")) {
    throw invalidArgument(f, `${quote(path)} is not a clean path to a file: no empty, '.' or '..' segments and no trailing '/'`);
  }
  return path;
}

// Container settings and environment.

/** Kubernetes' rule for environment variable names. */
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
/** A DNS subdomain: what ConfigMap and Secret names must be. */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkEnvName(f: string, name: string): string {
  if (!ENV_NAME.test(name)) throw invalidArgument(f, `${quote(name)} is not an environment variable name: use letters, digits, '_', '-' or '.', not starting with a digit`);
  return name;
}

function checkEnvironmentSource(f: string, source: EnvironmentSource): EnvironmentSource {
  if (source.kind !== EnvironmentSource_Kind.CONFIG_MAP && source.kind !== EnvironmentSource_Kind.SECRET) {
    throw invalidArgument(`${f}.kind`, "must be KIND_CONFIG_MAP or KIND_SECRET");
  }
  if (!DNS_SUBDOMAIN.test(source.name)) throw invalidArgument(`${f}.name`, `${quote(source.name)} is not a ConfigMap or Secret name: use a lowercase DNS subdomain`);
  return source;
}

function setEnvironmentSource(container: ContainerSettings, f: string, source: EnvironmentSource) {
  const { kind, name } = checkEnvironmentSource(f, source);
  if (!container.environmentSources.some((s) => s.kind === kind && s.name === name)) {
    container.environmentSources.push(create(EnvironmentSourceSchema, { kind, name }));
  }
}

function checkContainerSettings(f: string, settings: ContainerSettings): ContainerSettings {
  for (const name of Object.keys(settings.environmentVariables)) checkEnvName(`${f}.environment_variables["${name}"]`, name);
  const seen = new Set<string>();
  settings.environmentSources.forEach((s, j) => {
    checkEnvironmentSource(`${f}.environment_sources[${j}]`, s);
    if (seen.has(`${s.kind}/${s.name}`)) throw invalidArgument(`${f}.environment_sources[${j}]`, `${s.name} is listed twice`);
    seen.add(`${s.kind}/${s.name}`);
  });
  const { requests, limits, gpuLimits } = settings.resources ?? {};
  checkResourceList(`${f}.resources.requests`, requests);
  checkResourceList(`${f}.resources.limits`, limits);
  // A zero limit means "no limit", so only a set limit bounds its request (as Kubernetes requires).
  if (requests && limits?.cpuMillis && requests.cpuMillis > limits.cpuMillis) {
    throw invalidArgument(`${f}.resources.requests.cpu_millis`, `${requests.cpuMillis} exceeds the limit of ${limits.cpuMillis}`);
  }
  if (requests && limits?.memoryBytes && requests.memoryBytes > limits.memoryBytes) {
    throw invalidArgument(`${f}.resources.requests.memory_bytes`, `${requests.memoryBytes} exceeds the limit of ${limits.memoryBytes}`);
  }
  if (gpuLimits?.count && !gpuLimits.type) throw invalidArgument(`${f}.resources.gpu_limits.type`, "is required with a GPU count, e.g. nvidia.com/gpu");
  return settings;
}

/** Decoded or created messages cannot hold negative values, but ones changed in code can. */
function checkResourceList(f: string, list: ResourceList | undefined) {
  if (list && (list.cpuMillis < 0 || !Number.isInteger(list.cpuMillis))) throw invalidArgument(`${f}.cpu_millis`, "must be a whole, non-negative number");
  if (list && list.memoryBytes < 0n) throw invalidArgument(`${f}.memory_bytes`, "must not be negative");
}

// Autoscaling.

/** A Kubernetes quantity, e.g. `100`, `0.5`, `250m`, `1Gi`, `1e3`. */
const QUANTITY = /^[+-]?(\d+\.?\d*|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;

function checkHorizontalScale(f: string, scale: HorizontalScale): HorizontalScale {
  const { minReplicas: min, maxReplicas: max, cpuTarget, customMetrics } = scale;
  // All zero turns autoscaling off; anything else is an autoscaler, which needs bounds.
  if ((cpuTarget || customMetrics.length > 0) && max === 0) throw invalidArgument(`${f}.max_replicas`, "is required to autoscale on CPU or custom metrics");
  if (min > max) throw invalidArgument(`${f}.min_replicas`, `${min} exceeds max_replicas (${max})`);
  if (max > 0 && min < 1) throw invalidArgument(`${f}.min_replicas`, "must be at least 1 when autoscaling");
  const percent = cpuTarget?.averageUtilizationPercentage;
  if (percent !== undefined && (percent < 1 || percent > 100)) {
    throw invalidArgument(`${f}.cpu_target.average_utilization_percentage`, `${percent} is not a percentage from 1 to 100`);
  }
  for (const [j, m] of customMetrics.entries()) checkCustomMetric(`${f}.custom_metrics[${j}]`, m);
  return scale;
}

function checkCustomMetric(f: string, { metric }: CustomMetric) {
  if (!metric.case) throw invalidArgument(f, "set instance or object");
  const at = `${f}.${metric.case}`;
  if (!metric.value.metricName) throw invalidArgument(`${at}.metric_name`, "is required");
  const quantities: Record<string, string> = { average_value: metric.value.averageValue };
  if (metric.case === "instance" && !metric.value.averageValue) throw invalidArgument(`${at}.average_value`, "is required");
  if (metric.case === "object") {
    const { value, averageValue, objectReference: ref } = metric.value;
    if (!value === !averageValue) throw invalidArgument(at, "set exactly one of value and average_value");
    if (!ref?.kind || !ref.name) throw invalidArgument(`${at}.object_reference`, "needs a kind and a name");
    quantities.value = value;
  }
  for (const [name, q] of Object.entries(quantities)) {
    if (q && !QUANTITY.test(q)) throw invalidArgument(`${at}.${name}`, `${quote(q)} is not a quantity, e.g. 100, 250m or 1Gi`);
  }
}

// Cron jobs.

const URL_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;

function addCronJob(config: RolloutConfig, f: string, job: CronJob) {
  checkDnsLabel(`${f}.job_name`, job.jobName);
  if (config.cronJobs.some((j) => j.jobName === job.jobName)) {
    throw invalidArgument(`${f}.job_name`, `a cron job named ${quote(job.jobName)} exists: remove it first to replace it`);
  }
  checkCronSchedule(`${f}.schedule`, job.schedule);
  if (job.maxRetries < 0) throw invalidArgument(`${f}.max_retries`, "must not be negative");
  if (job.timeout && (job.timeout.seconds < 0n || job.timeout.nanos < 0)) throw invalidArgument(`${f}.timeout`, "must not be negative");
  const { jobType } = job;
  if (jobType.case === "url") {
    const { port, path } = jobType.value;
    if (port < 1n || port > 65535n) throw invalidArgument(`${f}.url.port`, `${port} is not a port from 1 to 65535`);
    if (!URL_PATH.test(path)) throw invalidArgument(`${f}.url.path`, `${quote(path)} is not a URL path: start with '/'; put the query in query_parameters`);
  } else if (jobType.case === "command") {
    if (!jobType.value.command) throw invalidArgument(`${f}.command.command`, "is required");
  } else {
    throw invalidArgument(f, "set url or command: a cron job either calls the capsule or runs a command");
  }
  config.cronJobs.push(clone(CronJobSchema, job));
}

// Network interfaces.

function checkNetwork(f: string, network: Network): Network {
  network.interfaces.forEach((inf, j) => {
    const at = `${f}.interfaces[${j}]`;
    checkInterface(at, inf);
    const earlier = network.interfaces.slice(0, j);
    const twin = earlier.find((o) => o.name === inf.name);
    if (twin) throw invalidArgument(`${at}.name`, `${quote(inf.name)} is used by two interfaces`);
    checkConflicts(at, inf, earlier);
  });
  return network;
}

function setInterface(config: RolloutConfig, f: string, inf: Interface) {
  checkInterface(f, inf);
  const network = (config.network ??= create(NetworkSchema));
  checkConflicts(f, inf, network.interfaces.filter((o) => o.name !== inf.name));
  const existing = network.interfaces.findIndex((o) => o.name === inf.name);
  const next = clone(InterfaceSchema, inf);
  if (existing >= 0) network.interfaces[existing] = next;
  else network.interfaces.push(next);
}

/** Ports are unique, and a container has one liveness and one readiness probe at most. */
function checkConflicts(f: string, inf: Interface, others: Interface[]) {
  const clash = others.find((o) => o.port === inf.port);
  if (clash) throw invalidArgument(`${f}.port`, `${inf.port} is already the port of interface ${quote(clash.name)}`);
  for (const probe of ["liveness", "readiness"] as const) {
    const holder = inf[probe] && others.find((o) => o[probe]);
    if (holder) throw invalidArgument(`${f}.${probe}`, `interface ${quote(holder.name)} has the ${probe} probe already; a capsule has one at most`);
  }
}

function checkInterface(f: string, inf: Interface) {
  checkDnsLabel(`${f}.name`, inf.name);
  if (inf.port < 1 || inf.port > 65535) throw invalidArgument(`${f}.port`, `${inf.port} is not a port from 1 to 65535`);
  checkProbe(`${f}.liveness`, inf.liveness);
  checkProbe(`${f}.readiness`, inf.readiness);
  const method = inf.public?.enabled ? inf.public.method?.kind : undefined;
  if (inf.public?.enabled && !method?.case) throw invalidArgument(`${f}.public.method`, "set load_balancer or ingress for a public interface");
  if (method?.case === "loadBalancer") {
    const { port, nodePort } = method.value;
    if (port < 1 || port > 65535) throw invalidArgument(`${f}.public.method.load_balancer.port`, `${port} is not a port from 1 to 65535`);
    if (nodePort > 65535) throw invalidArgument(`${f}.public.method.load_balancer.node_port`, `${nodePort} is not a port`);
  } else if (method?.case === "ingress") {
    if (!method.value.host) throw invalidArgument(`${f}.public.method.ingress.host`, "is required");
    method.value.paths.forEach((p, k) => {
      if (!p.startsWith("/")) throw invalidArgument(`${f}.public.method.ingress.paths[${k}]`, `${quote(p)} must start with '/'`);
    });
  }
  inf.routes.forEach((route, k) => {
    if (!route.host) throw invalidArgument(`${f}.routes[${k}].host`, "is required");
    route.paths.forEach((p, l) => {
      if (!p.path.startsWith("/")) throw invalidArgument(`${f}.routes[${k}].paths[${l}].path`, `${quote(p.path)} must start with '/'`);
    });
  });
}

function checkProbe(f: string, probe: InterfaceProbe | undefined) {
  if (!probe) return;
  if (!probe.kind.case) throw invalidArgument(f, "set one of http, tcp or grpc");
  if (probe.kind.case === "http" && !probe.kind.value.path.startsWith("/")) {
    throw invalidArgument(`${f}.http.path`, `${quote(probe.kind.value.path)} must start with '/'`);
  }
}

// Annotations.

const ANNOTATION_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Kubernetes' rule: an optional DNS subdomain prefix and '/', then a name of up to 63 characters. */
function checkAnnotationKey(f: string, key: string): string {
  const slash = key.lastIndexOf("/");
  const [prefix, name] = slash < 0 ? [undefined, key] : [key.slice(0, slash), key.slice(slash + 1)];
  if ((prefix !== undefined && !DNS_SUBDOMAIN.test(prefix)) || name.length > 63 || !ANNOTATION_NAME.test(name)) {
    throw invalidArgument(f, `${quote(key)} is not an annotation key: use [prefix/]name, the prefix a DNS subdomain, the name up to 63 letters, digits, '-', '_' or '.'`);
  }
  return key;
}
