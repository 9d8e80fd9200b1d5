import { clone, create, type DescField, equals, type MessageInitShape, ScalarType } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type Change, ChangeSchema, type ContainerSettings, EnvironmentSource_Kind } from "../../../proto/gen/api/v1/capsule/change_pb";
import { type RolloutConfig, RolloutConfigSchema } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { deployKinds } from "../actions";
import { type ApplyContext, applyChanges, deployKindOf } from "./changes";

type FieldInit = NonNullable<MessageInitShape<typeof ChangeSchema>["field"]>;

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0);
const ctx: ApplyContext = {
  author: { identifier: "ada@example.com", printableName: "Ada", account: { case: "userId", value: "u-1" } },
  now: NOW,
  environmentId: "prod",
};
const IMAGE = "index.docker.io/library/nginx:1.25";

const changesOf = (...fields: FieldInit[]) => fields.map((field) => create(ChangeSchema, { field }));
const apply = (previous: RolloutConfig | undefined, ...fields: FieldInit[]) => applyChanges(previous, changesOf(...fields), ctx);

/** The `invalid_argument` message that applying `fields` is refused with. */
function refusal(previous: RolloutConfig | undefined, fields: FieldInit[], context: ApplyContext = ctx): string {
  try {
    applyChanges(previous, changesOf(...fields), context);
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    return (err as ConnectError).rawMessage;
  }
  throw new Error(`${JSON.stringify(fields, (_, v) => (typeof v === "bigint" ? String(v) : v))} was accepted`);
}

const probe = (path: string) => ({ kind: { case: "http" as const, value: { path } } });

/** A config with something in every part, as an earlier rollout would leave it. */
function populated(): RolloutConfig {
  return create(RolloutConfigSchema, {
    createdBy: { identifier: "old@example.com" },
    createdAt: timestampFromMs(NOW - 86_400_000),
    changes: changesOf({ case: "replicas", value: 2 }),
    environmentId: "prod",
    message: "old message",
    replicas: 2,
    imageId: "index.docker.io/library/nginx:1.24",
    network: { interfaces: [{ name: "http", port: 8080, liveness: probe("/healthz") }, { name: "metrics", port: 9090 }] },
    containerSettings: {
      environmentVariables: { LOG_LEVEL: "info" },
      command: "/bin/server",
      args: ["--serve"],
      environmentSources: [{ kind: EnvironmentSource_Kind.SECRET, name: "db-credentials" }],
    },
    configFiles: [{ path: "/etc/app/config.yaml", content: new TextEncoder().encode("a: 1") }],
    horizontalScale: { minReplicas: 2, maxReplicas: 4, cpuTarget: { averageUtilizationPercentage: 80 } },
    cronJobs: [{ jobName: "nightly", schedule: "0 3 * * *", jobType: { case: "command", value: { command: "cleanup" } } }],
    annotations: { "example.com/team": "core" },
  });
}

describe("applyChanges: every kind of change", () => {
  it("replicas", () => {
    expect(apply(undefined, { case: "replicas", value: 3 }).replicas).toBe(3);
    expect(apply(populated(), { case: "replicas", value: 0 }).replicas).toBe(0);
  });

  it("image_id: normalized, and it must be an image of the capsule", () => {
    const exists: ApplyContext = { ...ctx, imageExists: (id) => id === IMAGE };
    expect(applyChanges(undefined, changesOf({ case: "imageId", value: "nginx:1.25" }), exists).imageId).toBe(IMAGE);
    expect(applyChanges(populated(), changesOf({ case: "imageId", value: IMAGE }), exists).imageId).toBe(IMAGE);
    expect(refusal(undefined, [{ case: "imageId", value: "nginx:1.26" }], exists)).toMatch(/^changes\[0\]\.image_id: image index\.docker\.io\/library\/nginx:1\.26 has not been added/);
    expect(refusal(undefined, [{ case: "imageId", value: "" }])).toBe("changes[0].image_id: is required");
    expect(refusal(undefined, [{ case: "imageId", value: "Bad Image" }])).toMatch(/^changes\[0\]\.image_id: /);
  });

  it("add_image: any valid reference, registered or not", () => {
    const none: ApplyContext = { ...ctx, imageExists: () => false };
    expect(applyChanges(undefined, changesOf({ case: "addImage", value: { image: "ghcr.io/org/app:v2" } }), none).imageId).toBe("ghcr.io/org/app:v2");
    expect(apply(populated(), { case: "addImage", value: { image: "nginx" } }).imageId).toBe("index.docker.io/library/nginx:latest");
    expect(refusal(undefined, [{ case: "addImage", value: { image: "" } }])).toMatch(/^changes\[0\]\.add_image\.image: /);
  });

  it("network: replaces every interface", () => {
    const network = { interfaces: [{ name: "grpc", port: 5000, readiness: { kind: { case: "grpc" as const, value: {} } } }] };
    expect(apply(undefined, { case: "network", value: network }).network?.interfaces.map((i) => i.name)).toEqual(["grpc"]);
    expect(apply(populated(), { case: "network", value: network }).network?.interfaces.map((i) => i.name)).toEqual(["grpc"]);
    expect(apply(populated(), { case: "network", value: {} }).network?.interfaces).toEqual([]);
  });

  it("container_settings: replaces them all", () => {
    const value = { command: "/app", environmentVariables: { PORT: "80" }, resources: { requests: { cpuMillis: 100, memoryBytes: 1n << 20n } } };
    const empty = apply(undefined, { case: "containerSettings", value });
    expect(empty.containerSettings).toMatchObject({ command: "/app", args: [], environmentVariables: { PORT: "80" } });
    const full = apply(populated(), { case: "containerSettings", value });
    expect(full.containerSettings).toMatchObject({ command: "/app", args: [], environmentVariables: { PORT: "80" }, environmentSources: [] });
    expect(full.containerSettings?.resources?.requests?.memoryBytes).toBe(1n << 20n);
  });

  it("auto_add_rig_service_accounts", () => {
    expect(apply(undefined, { case: "autoAddRigServiceAccounts", value: true }).autoAddRigServiceAccounts).toBe(true);
    expect(apply(populated(), { case: "autoAddRigServiceAccounts", value: false }).autoAddRigServiceAccounts).toBe(false);
  });

  it("set_config_file: adds, or replaces the file at the same path, recording who and when", () => {
    const content = new TextEncoder().encode("b: 2");
    const empty = apply(undefined, { case: "setConfigFile", value: { path: "/etc/app/config.yaml", content, isSecret: true } });
    expect(empty.configFiles).toHaveLength(1);
    expect(empty.configFiles[0]).toMatchObject({ path: "/etc/app/config.yaml", content, isSecret: true, updatedBy: { identifier: "ada@example.com" }, updatedAt: timestampFromMs(NOW) });
    const full = apply(populated(), { case: "setConfigFile", value: { path: "/etc/app/config.yaml", content } }, { case: "setConfigFile", value: { path: "/etc/other", content } });
    expect(full.configFiles.map((f) => [f.path, new TextDecoder().decode(f.content)])).toEqual([["/etc/app/config.yaml", "b: 2"], ["/etc/other", "b: 2"]]);
  });

  it("remove_config_file: removes it; a path with no file is an error", () => {
    expect(apply(populated(), { case: "removeConfigFile", value: "/etc/app/config.yaml" }).configFiles).toEqual([]);
    expect(refusal(undefined, [{ case: "removeConfigFile", value: "/etc/app/config.yaml" }])).toBe("changes[0].remove_config_file: no config file at /etc/app/config.yaml");
  });

  it("horizontal_scale: replaces the autoscaler, and all zero turns it off", () => {
    const value = { minReplicas: 1, maxReplicas: 10, cpuTarget: { averageUtilizationPercentage: 50 } };
    expect(apply(undefined, { case: "horizontalScale", value }).horizontalScale).toMatchObject(value);
    const off = apply(populated(), { case: "horizontalScale", value: {} }).horizontalScale;
    expect(off).toMatchObject({ minReplicas: 0, maxReplicas: 0 });
    expect(off?.cpuTarget).toBeUndefined();
  });

  it("set_environment_variable and remove_environment_variable", () => {
    expect(apply(undefined, { case: "setEnvironmentVariable", value: { name: "A", value: "1" } }).containerSettings?.environmentVariables).toEqual({ A: "1" });
    const full = apply(populated(), { case: "setEnvironmentVariable", value: { name: "LOG_LEVEL", value: "debug" } }, { case: "setEnvironmentVariable", value: { name: "B", value: "" } });
    expect(full.containerSettings?.environmentVariables).toEqual({ LOG_LEVEL: "debug", B: "" });
    expect(apply(populated(), { case: "removeEnvironmentVariable", value: "LOG_LEVEL" }).containerSettings?.environmentVariables).toEqual({});
    // Removing an absent variable is a no-op, and creates no container settings.
    expect(apply(undefined, { case: "removeEnvironmentVariable", value: "NOPE" }).containerSettings).toBeUndefined();
  });

  it("set_environment_source and remove_environment_source: by kind and name", () => {
    const configMap = { kind: EnvironmentSource_Kind.CONFIG_MAP, name: "db-credentials" };
    expect(apply(undefined, { case: "setEnvironmentSource", value: configMap }).containerSettings?.environmentSources).toMatchObject([configMap]);
    const full = apply(populated(), { case: "setEnvironmentSource", value: configMap }, { case: "setEnvironmentSource", value: configMap });
    expect(full.containerSettings?.environmentSources.map((s) => s.kind)).toEqual([EnvironmentSource_Kind.SECRET, EnvironmentSource_Kind.CONFIG_MAP]);
    // The same name of the other kind is another source.
    expect(apply(populated(), { case: "removeEnvironmentSource", value: configMap }).containerSettings?.environmentSources).toHaveLength(1);
    expect(apply(populated(), { case: "removeEnvironmentSource", value: { ...configMap, kind: EnvironmentSource_Kind.SECRET } }).containerSettings?.environmentSources).toEqual([]);
    expect(apply(undefined, { case: "removeEnvironmentSource", value: configMap }).containerSettings).toBeUndefined();
  });

  it("command_arguments: replaces command and args, keeping the rest", () => {
    const value = { command: "/bin/worker", args: ["--queue", "main"] };
    expect(apply(undefined, { case: "commandArguments", value }).containerSettings).toMatchObject(value);
    const full = apply(populated(), { case: "commandArguments", value: {} });
    expect(full.containerSettings).toMatchObject({ command: "", args: [], environmentVariables: { LOG_LEVEL: "info" } });
  });

  it("add_cron_job and remove_cron_job", () => {
    const job = { jobName: "ping", schedule: "*/15 * * * *", maxRetries: 6, jobType: { case: "url" as const, value: { port: 8080n, path: "/tasks/ping", queryParameters: { a: "b" } } } };
    expect(apply(undefined, { case: "addCronJob", value: job }).cronJobs.map((j) => j.jobName)).toEqual(["ping"]);
    expect(apply(populated(), { case: "addCronJob", value: job }).cronJobs.map((j) => j.jobName)).toEqual(["nightly", "ping"]);
    expect(apply(populated(), { case: "removeCronJob", value: { jobName: "nightly" } }).cronJobs).toEqual([]);
    expect(refusal(undefined, [{ case: "removeCronJob", value: { jobName: "nightly" } }])).toBe('changes[0].remove_cron_job.job_name: no cron job named "nightly"');
  });

  it("set_interface: adds, or replaces the one of the same name in place", () => {
    expect(apply(undefined, { case: "setInterface", value: { name: "http", port: 80 } }).network?.interfaces.map((i) => i.port)).toEqual([80]);
    const full = apply(populated(), { case: "setInterface", value: { name: "http", port: 8081 } }, { case: "setInterface", value: { name: "admin", port: 8082 } });
    expect(full.network?.interfaces.map((i) => `${i.name}:${i.port}`)).toEqual(["http:8081", "metrics:9090", "admin:8082"]);
    // The replaced interface's probe went with it.
    expect(full.network?.interfaces[0]?.liveness).toBeUndefined();
  });

  it("remove_interface: removes it; an unknown name is an error", () => {
    expect(apply(populated(), { case: "removeInterface", value: "http" }).network?.interfaces.map((i) => i.name)).toEqual(["metrics"]);
    expect(refusal(undefined, [{ case: "removeInterface", value: "http" }])).toBe('changes[0].remove_interface: no interface named "http"');
  });

  it("set_annotations replaces all; set_annotation and remove_annotation one", () => {
    expect(apply(undefined, { case: "setAnnotations", value: { annotations: { a: "1" } } }).annotations).toEqual({ a: "1" });
    expect(apply(populated(), { case: "setAnnotations", value: { annotations: { b: "2" } } }).annotations).toEqual({ b: "2" });
    expect(apply(undefined, { case: "setAnnotation", value: { name: "rig.dev/owner", value: "ada" } }).annotations).toEqual({ "rig.dev/owner": "ada" });
    expect(apply(populated(), { case: "setAnnotation", value: { name: "example.com/team", value: "edge" } }).annotations).toEqual({ "example.com/team": "edge" });
    expect(apply(populated(), { case: "removeAnnotation", value: "example.com/team" }).annotations).toEqual({});
    expect(apply(undefined, { case: "removeAnnotation", value: "absent" }).annotations).toEqual({});
  });

  it("a change that sets nothing is refused", () => {
    expect(refusal(undefined, [{ case: undefined }])).toBe("changes[0]: sets no change: set exactly one of its fields");
  });
});

describe("rollback", () => {
  const old = () => Object.assign(populated(), { replicas: 7, message: "rollout 3", imageId: "index.docker.io/library/nginx:1.20" });
  const withHistory = (config: RolloutConfig): ApplyContext => ({ ...ctx, rollbackConfig: (id) => (id === 3n ? config : undefined) });

  it("restores that rollout's configuration with this deploy's metadata", () => {
    const target = old();
    const snapshot = clone(RolloutConfigSchema, target);
    const changes = changesOf({ case: "replicas", value: 1 }, { case: "rollback", value: { rollbackId: 3n } });
    const result = applyChanges(populated(), changes, { ...withHistory(target), message: "back to 3" });
    expect(result.replicas).toBe(7);
    expect(result.imageId).toBe(target.imageId);
    expect(result.createdBy?.identifier).toBe("ada@example.com");
    expect(result.createdAt).toEqual(timestampFromMs(NOW));
    expect(result.message).toBe("back to 3");
    expect(result.changes.map((c) => c.field.case)).toEqual(["replicas", "rollback"]);
    expect(equals(RolloutConfigSchema, target, snapshot)).toBe(true);
  });

  it("applies later changes on top of the restored configuration", () => {
    const changes = changesOf({ case: "rollback", value: { rollbackId: 3n } }, { case: "replicas", value: 9 });
    expect(applyChanges(undefined, changes, withHistory(old())).replicas).toBe(9);
  });

  it("refuses an unknown rollout, and any rollout without history", () => {
    expect(refusal(populated(), [{ case: "rollback", value: { rollbackId: 4n } }], withHistory(old()))).toBe("changes[0].rollback.rollback_id: rollout 4 does not exist");
    expect(refusal(populated(), [{ case: "rollback", value: { rollbackId: 3n } }])).toBe("changes[0].rollback.rollback_id: rollout 3 does not exist");
    expect(refusal(populated(), [{ case: "rollback", value: {} }], withHistory(old()))).toBe("changes[0].rollback.rollback_id: is required");
  });
});

describe("applyChanges: metadata, order and immutability", () => {
  it("records every change in order, the author, the time, the environment and the message", () => {
    const changes = changesOf({ case: "replicas", value: 1 }, { case: "removeAnnotation", value: "x" }, { case: "replicas", value: 2 });
    const result = applyChanges(populated(), changes, { ...ctx, environmentId: "staging", message: "hello" });
    expect(result.changes).toHaveLength(3);
    for (const [i, c] of result.changes.entries()) expect(equals(ChangeSchema, c, changes[i]!)).toBe(true);
    expect(result.createdBy).toMatchObject({ identifier: "ada@example.com", printableName: "Ada", account: { case: "userId", value: "u-1" } });
    expect(result.createdAt).toEqual(timestampFromMs(NOW));
    expect(result.environmentId).toBe("staging");
    expect(result.message).toBe("hello");
    // The previous rollout's message is its own.
    expect(apply(populated()).message).toBe("");
  });

  it("applies changes in order: set then remove, remove then set", () => {
    const set: FieldInit = { case: "setEnvironmentVariable", value: { name: "X", value: "1" } };
    const remove: FieldInit = { case: "removeEnvironmentVariable", value: "X" };
    expect(apply(undefined, set, remove).containerSettings?.environmentVariables).toEqual({});
    expect(apply(undefined, remove, set).containerSettings?.environmentVariables).toEqual({ X: "1" });

    const job: FieldInit = { case: "addCronJob", value: { jobName: "nightly", schedule: "@daily", jobType: { case: "command", value: { command: "x" } } } };
    const removeJob: FieldInit = { case: "removeCronJob", value: { jobName: "nightly" } };
    expect(apply(populated(), removeJob, job).cronJobs.map((j) => j.schedule)).toEqual(["@daily"]);
    expect(refusal(populated(), [job, removeJob])).toMatch(/^changes\[0\]\.add_cron_job\.job_name: a cron job named "nightly" exists/);
    expect(apply(undefined, job, removeJob).cronJobs).toEqual([]);

    const file: FieldInit = { case: "setConfigFile", value: { path: "/a", content: new Uint8Array([1]) } };
    const removeFile: FieldInit = { case: "removeConfigFile", value: "/a" };
    expect(apply(undefined, file, removeFile).configFiles).toEqual([]);
    expect(refusal(undefined, [removeFile, file])).toBe("changes[0].remove_config_file: no config file at /a");

    const inf: FieldInit = { case: "setInterface", value: { name: "web", port: 80 } };
    const removeInf: FieldInit = { case: "removeInterface", value: "web" };
    expect(apply(undefined, inf, removeInf).network?.interfaces).toEqual([]);
    expect(refusal(undefined, [removeInf, inf])).toBe('changes[0].remove_interface: no interface named "web"');

    const annotations: FieldInit = { case: "setAnnotations", value: { annotations: { a: "1" } } };
    const annotation: FieldInit = { case: "setAnnotation", value: { name: "b", value: "2" } };
    expect(apply(undefined, annotation, annotations).annotations).toEqual({ a: "1" });
    expect(apply(undefined, annotations, annotation).annotations).toEqual({ a: "1", b: "2" });

    const settings: FieldInit = { case: "containerSettings", value: { command: "/a" } };
    const command: FieldInit = { case: "commandArguments", value: { command: "/b", args: ["x"] } };
    expect(apply(undefined, command, settings).containerSettings).toMatchObject({ command: "/a", args: [] });
    expect(apply(undefined, settings, command).containerSettings).toMatchObject({ command: "/b", args: ["x"] });
  });

  it("never changes the previous config, nor shares state with it or with the changes", () => {
    const previous = populated();
    const snapshot = clone(RolloutConfigSchema, previous);
    const changes = changesOf(
      { case: "replicas", value: 5 },
      { case: "setEnvironmentVariable", value: { name: "NEW", value: "1" } },
      { case: "removeEnvironmentSource", value: { kind: EnvironmentSource_Kind.SECRET, name: "db-credentials" } },
      { case: "setConfigFile", value: { path: "/etc/app/config.yaml", content: new Uint8Array([1, 2]) } },
      { case: "setInterface", value: { name: "http", port: 80 } },
      { case: "removeCronJob", value: { jobName: "nightly" } },
      { case: "setAnnotation", value: { name: "k", value: "v" } },
      { case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2 } },
    );
    const changesSnapshot = changes.map((c) => clone(ChangeSchema, c));
    const result = applyChanges(previous, changes, ctx);
    expect(equals(RolloutConfigSchema, previous, snapshot)).toBe(true);
    result.network!.interfaces[0]!.port = 1;
    result.horizontalScale!.maxReplicas = 99;
    result.changes[0]!.field = { case: "replicas", value: 0 };
    for (const [i, c] of changes.entries()) expect(equals(ChangeSchema, c, changesSnapshot[i]!)).toBe(true);
    expect(equals(RolloutConfigSchema, previous, snapshot)).toBe(true);
  });

  it("commits nothing of a list with an invalid change: it throws instead of returning", () => {
    const previous = populated();
    const snapshot = clone(RolloutConfigSchema, previous);
    expect(refusal(previous, [{ case: "replicas", value: 5 }, { case: "removeInterface", value: "nope" }])).toMatch(/^changes\[1\]\.remove_interface:/);
    expect(equals(RolloutConfigSchema, previous, snapshot)).toBe(true);
  });
});

describe("validation errors name the change and its field", () => {
  const url = (port: bigint, path: string) => ({ case: "url" as const, value: { port, path } });
  const cron = (value: object): FieldInit => ({ case: "addCronJob", value: { jobName: "job", schedule: "* * * * *", jobType: { case: "command", value: { command: "x" } }, ...value } });
  const cases: [FieldInit, string][] = [
    [{ case: "setConfigFile", value: { path: "etc/x" } }, 'set_config_file.path: "etc/x" is not an absolute path'],
    [{ case: "setConfigFile", value: { path: "/etc/../x" } }, "set_config_file.path: "],
    [{ case: "setConfigFile", value: { path: "/etc/dir/" } }, "set_config_file.path: "],
    [{ case: "setConfigFile", value: { path: "/x", content: new Uint8Array(1024 * 1024 + 1) } }, "set_config_file.content: "],
    [{ case: "horizontalScale", value: { minReplicas: 5, maxReplicas: 2 } }, "horizontal_scale.min_replicas: 5 exceeds max_replicas (2)"],
    [{ case: "horizontalScale", value: { minReplicas: 0, maxReplicas: 2 } }, "horizontal_scale.min_replicas: must be at least 1"],
    [{ case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2, cpuTarget: { averageUtilizationPercentage: 0 } } }, "horizontal_scale.cpu_target.average_utilization_percentage: 0 is not"],
    [{ case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2, cpuTarget: { averageUtilizationPercentage: 101 } } }, "horizontal_scale.cpu_target.average_utilization_percentage: 101 is not"],
    [{ case: "horizontalScale", value: { cpuTarget: { averageUtilizationPercentage: 50 } } }, "horizontal_scale.max_replicas: is required"],
    [{ case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2, customMetrics: [{}] } }, "horizontal_scale.custom_metrics[0]: set instance or object"],
    [{ case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2, customMetrics: [{ metric: { case: "instance", value: { metricName: "rps", averageValue: "lots" } } }] } }, 'horizontal_scale.custom_metrics[0].instance.average_value: "lots" is not a quantity'],
    [{ case: "horizontalScale", value: { minReplicas: 1, maxReplicas: 2, customMetrics: [{ metric: { case: "object", value: { metricName: "q", value: "1", averageValue: "2", objectReference: { kind: "Queue", name: "q" } } } }] } }, "horizontal_scale.custom_metrics[0].object: set exactly one"],
    [{ case: "setEnvironmentVariable", value: { name: "1BAD", value: "" } }, 'set_environment_variable.name: "1BAD" is not an environment variable name'],
    [{ case: "setEnvironmentVariable", value: { name: "A B", value: "" } }, "set_environment_variable.name: "],
    [{ case: "removeEnvironmentVariable", value: "" }, "remove_environment_variable: "],
    [{ case: "setEnvironmentSource", value: { name: "x" } }, "set_environment_source.kind: must be KIND_CONFIG_MAP or KIND_SECRET"],
    [{ case: "setEnvironmentSource", value: { kind: EnvironmentSource_Kind.SECRET, name: "Bad_Name" } }, "set_environment_source.name: "],
    [{ case: "removeEnvironmentSource", value: { kind: EnvironmentSource_Kind.SECRET } }, "remove_environment_source.name: "],
    [{ case: "containerSettings", value: { environmentVariables: { "bad name": "x" } } }, 'container_settings.environment_variables["bad name"]: '],
    [{ case: "containerSettings", value: { resources: { requests: { cpuMillis: 500 }, limits: { cpuMillis: 250 } } } }, "container_settings.resources.requests.cpu_millis: 500 exceeds the limit of 250"],
    [{ case: "containerSettings", value: { resources: { requests: { memoryBytes: 2n }, limits: { memoryBytes: 1n } } } }, "container_settings.resources.requests.memory_bytes: "],
    [{ case: "containerSettings", value: { resources: { gpuLimits: { count: 1 } } } }, "container_settings.resources.gpu_limits.type: "],
    [{ case: "containerSettings", value: { environmentSources: [{ kind: 1, name: "a" }, { kind: 1, name: "a" }] } }, "container_settings.environment_sources[1]: "],
    [cron({ jobName: "Bad_Name" }), 'add_cron_job.job_name: "Bad_Name" is not a DNS label'],
    [cron({ schedule: "61 * * * *" }), 'add_cron_job.schedule: "61 * * * *" minute 61 is out of range 0-59'],
    [cron({ schedule: "* * *" }), 'add_cron_job.schedule: "* * *" has 3 fields, expected 5'],
    [cron({ maxRetries: -1 }), "add_cron_job.max_retries: must not be negative"],
    [cron({ timeout: { seconds: -5n } }), "add_cron_job.timeout: must not be negative"],
    [cron({ jobType: { case: undefined } }), "add_cron_job: set url or command"],
    [cron({ jobType: url(0n, "/") }), "add_cron_job.url.port: 0 is not a port from 1 to 65535"],
    [cron({ jobType: url(65536n, "/") }), "add_cron_job.url.port: 65536 is not a port"],
    [cron({ jobType: url(80n, "tasks") }), 'add_cron_job.url.path: "tasks" is not a URL path'],
    [cron({ jobType: url(80n, "/a?b=c") }), "add_cron_job.url.path: "],
    [cron({ jobType: { case: "command", value: { command: "" } } }), "add_cron_job.command.command: is required"],
    [{ case: "setInterface", value: { name: "HTTP", port: 80 } }, 'set_interface.name: "HTTP" is not a DNS label'],
    [{ case: "setInterface", value: { name: "web", port: 0 } }, "set_interface.port: 0 is not a port from 1 to 65535"],
    [{ case: "setInterface", value: { name: "web", port: 70000 } }, "set_interface.port: 70000 is not a port"],
    [{ case: "setInterface", value: { name: "web", port: 8080 } }, 'set_interface.port: 8080 is already the port of interface "http"'],
    [{ case: "setInterface", value: { name: "web", port: 80, liveness: probe("/live") } }, 'set_interface.liveness: interface "http" has the liveness probe already'],
    [{ case: "setInterface", value: { name: "web", port: 80, readiness: {} } }, "set_interface.readiness: set one of http, tcp or grpc"],
    [{ case: "setInterface", value: { name: "web", port: 80, readiness: probe("ready") } }, "set_interface.readiness.http.path: "],
    [{ case: "setInterface", value: { name: "web", port: 80, public: { enabled: true } } }, "set_interface.public.method: "],
    [{ case: "setInterface", value: { name: "web", port: 80, public: { enabled: true, method: { kind: { case: "loadBalancer", value: { port: 0 } } } } } }, "set_interface.public.method.load_balancer.port: "],
    [{ case: "setInterface", value: { name: "web", port: 80, public: { enabled: true, method: { kind: { case: "ingress", value: { host: "" } } } } } }, "set_interface.public.method.ingress.host: is required"],
    [{ case: "setInterface", value: { name: "web", port: 80, routes: [{ host: "a.example.com", paths: [{ path: "x" }] }] } }, "set_interface.routes[0].paths[0].path: "],
    [{ case: "network", value: { interfaces: [{ name: "a", port: 80 }, { name: "a", port: 81 }] } }, 'network.interfaces[1].name: "a" is used by two interfaces'],
    [{ case: "network", value: { interfaces: [{ name: "a", port: 80 }, { name: "b", port: 80 }] } }, 'network.interfaces[1].port: 80 is already the port of interface "a"'],
    [{ case: "network", value: { interfaces: [{ name: "a", port: 80, readiness: probe("/r") }, { name: "b", port: 81, readiness: probe("/r") }] } }, "network.interfaces[1].readiness: "],
    [{ case: "network", value: { interfaces: [{ name: "a", port: 99999 }] } }, "network.interfaces[0].port: "],
    [{ case: "setAnnotation", value: { name: "-bad", value: "" } }, 'set_annotation.name: "-bad" is not an annotation key'],
    [{ case: "setAnnotation", value: { name: "Bad_Prefix/x", value: "" } }, "set_annotation.name: "],
    [{ case: "setAnnotation", value: { name: `${"a".repeat(64)}`, value: "" } }, "set_annotation.name: "],
    [{ case: "setAnnotations", value: { annotations: { ok: "1", "no/": "2" } } }, 'set_annotations.annotations["no/"]: '],
    [{ case: "removeAnnotation", value: "a b" }, "remove_annotation: "],
  ];

  it.each(cases.map(([field, message]) => [field.case, message, field] as const))("%s → %s", (_, message, field) => {
    // Two valid changes first, so the index in the message is the failing change's own.
    const error = refusal(populated(), [{ case: "replicas", value: 1 }, { case: "autoAddRigServiceAccounts", value: true }, field]);
    expect(error.startsWith(`changes[2].${message}`), error).toBe(true);
  });

  it("refuses negative resources, which only messages built in code can have", () => {
    const [change] = changesOf({ case: "containerSettings", value: { resources: { limits: { cpuMillis: 1, memoryBytes: 1n } } } });
    const limits = (change!.field.value as ContainerSettings).resources!.limits!;
    limits.cpuMillis = -1;
    expect(() => applyChanges(undefined, [change!], ctx)).toThrow("changes[0].container_settings.resources.limits.cpu_millis: must be a whole, non-negative number");
    limits.cpuMillis = 1;
    limits.memoryBytes = -1n;
    expect(() => applyChanges(undefined, [change!], ctx)).toThrow("changes[0].container_settings.resources.limits.memory_bytes: must not be negative");
  });

  it("accepts what is valid at the edges", () => {
    const result = apply(
      undefined,
      { case: "setConfigFile", value: { path: "/.env" } },
      { case: "horizontalScale", value: { minReplicas: 3, maxReplicas: 3, cpuTarget: { averageUtilizationPercentage: 100 } } },
      { case: "setEnvironmentVariable", value: { name: "_under.score-dash", value: "" } },
      { case: "setAnnotation", value: { name: "sub.example.com/Name_1.x", value: "" } },
      { case: "setInterface", value: { name: "a", port: 65535, liveness: { kind: { case: "tcp", value: {} } } } },
      { case: "setInterface", value: { name: "b", port: 1, readiness: { kind: { case: "grpc", value: { service: "" } } } } },
      { case: "addCronJob", value: { jobName: "j", schedule: "0 0 31 2 *", maxRetries: 0, jobType: url(65535n, "/") } },
    );
    expect(result.network?.interfaces).toHaveLength(2);
  });
});

describe("deployKindOf", () => {
  const oneof = ChangeSchema.oneofs.find((o) => o.name === "field")!;

  /** A change of the field's kind, built from the descriptor alone: only the case matters. */
  function sampleOf(field: DescField): Change {
    const scalars: Partial<Record<ScalarType, unknown>> = { [ScalarType.STRING]: "x", [ScalarType.BOOL]: true, [ScalarType.UINT32]: 1, [ScalarType.UINT64]: 1n };
    const value = field.fieldKind === "message" ? create(field.message) : field.fieldKind === "scalar" ? scalars[field.scalar] : undefined;
    if (value === undefined) throw new Error(`no sample value for ${field.name}`);
    return create(ChangeSchema, { field: { case: field.localName, value } as FieldInit });
  }

  it("maps every kind of change in the descriptor to a deploy sub-action", () => {
    const mapped = new Map<string, string>();
    for (const field of oneof.fields) {
      const kind = deployKindOf(sampleOf(field));
      expect(deployKinds, field.name).toContain(kind);
      mapped.set(field.name, kind);
    }
    expect(Object.fromEntries(mapped)).toEqual({
      replicas: "replica",
      image_id: "image",
      network: "network",
      container_settings: "container",
      auto_add_rig_service_accounts: "serviceaccount",
      set_config_file: "configfiles",
      remove_config_file: "configfiles",
      horizontal_scale: "autoscale",
      rollback: "rollback",
      set_environment_variable: "environmentvariables",
      remove_environment_variable: "environmentvariables",
      set_environment_source: "environmentsources",
      remove_environment_source: "environmentsources",
      command_arguments: "container",
      add_cron_job: "cronjob",
      remove_cron_job: "cronjob",
      set_interface: "network",
      remove_interface: "network",
      set_annotations: "annotations",
      set_annotation: "annotations",
      remove_annotation: "annotations",
      add_image: "image",
    });
  });

  it("covers every kind that applyChanges handles: each one applies to an empty config or is refused by name", () => {
    for (const field of oneof.fields) {
      try {
        applyChanges(undefined, [sampleOf(field)], { ...ctx, rollbackConfig: () => create(RolloutConfigSchema) });
      } catch (err) {
        expect((err as ConnectError).rawMessage, field.name).toMatch(new RegExp(`^changes\\[0\\]\\.${field.name}[.:]`));
      }
    }
  });

  it("refuses an empty change", () => {
    expect(() => deployKindOf(create(ChangeSchema))).toThrow(/change: sets no change/);
    expect(() => deployKindOf(create(ChangeSchema), "changes[4]")).toThrow(/changes\[4\]: sets no change/);
  });
});
