/**
 * What gitpod.v1.EnvironmentService needs besides its handlers: environment classes, request
 * checks (the buf.validate rules of Gitpod's proto), and the environment's access and logs
 * tokens. Ids are in ids.ts, page tokens in pages.ts.
 */
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { EnvironmentSpec, UpdateEnvironmentRequest } from "../../proto/gen/gitpod/v1/environment_pb";
import { type EnvironmentClass, RunnerKind } from "../../proto/gen/gitpod/v1/runner_configuration_pb";
import type { ClusterConfig } from "../core/config";
import { invalidArgument, quote } from "../core/errors";
import { uuidOf } from "../core/gitpod-ids";

// ---- Environment classes ----------------------------------------------------------------------

/**
 * The environment class of a cluster: each configured cluster is one class. Its id is a
 * name-based UUID (version 5 layout, SHA-1 of the cluster id), so it stays the same as long
 * as the cluster does.
 */
async function classOf(c: ClusterConfig): Promise<EnvironmentClass> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(`edgeplane/cluster/${c.id}`)));
  const b = digest.slice(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return {
    $typeName: "gitpod.v1.EnvironmentClass",
    id: uuidOf(b),
    displayName: `${c.id} (${c.type})`,
    description: `${c.type === "docker" ? "Docker host" : "Kubernetes cluster"} ${c.id}`,
    configuration: [
      { $typeName: "gitpod.v1.FieldValue", key: "cluster", value: c.id },
      { $typeName: "gitpod.v1.FieldValue", key: "type", value: c.type },
    ],
    runnerId: "",
    enabled: true,
  };
}

export const environmentClasses = (clusters: readonly ClusterConfig[]) => Promise.all(clusters.map(classOf));

/** edgeplane's runners connect from wherever the machines are: all of them are remote runners. */
export const RUNNER_KIND = RunnerKind.REMOTE;

/**
 * The cluster of `spec.machine.class`: a class id (or, for convenience, a cluster id). An
 * empty class means the only cluster, when there is only one.
 */
export async function clusterOfClass(clusters: readonly ClusterConfig[], classId: string): Promise<{ cluster: ClusterConfig; classId: string }> {
  const classes = await environmentClasses(clusters);
  if (!classId) {
    if (clusters.length === 1) return { cluster: clusters[0]!, classId: classes[0]!.id };
    throw invalidArgument("spec.machine.class", `is required: choose one of the environment classes (${classes.map((c) => c.id).join(", ")})`);
  }
  const i = classes.findIndex((c, i) => c.id === classId || clusters[i]!.id === classId);
  if (i < 0) throw invalidArgument("spec.machine.class", `${quote(classId)} is not an environment class: ListEnvironmentClasses lists them`);
  return { cluster: clusters[i]!, classId: classes[i]!.id };
}

// ---- Request checks ---------------------------------------------------------------------------

const relative = (field: string, path: string) => {
  if (path.startsWith("/")) throw invalidArgument(field, "must be relative to the repository root, not start with /");
};

function checkTimeout(field: string, d: Duration | undefined) {
  if (!d) return;
  const seconds = Number(d.seconds) + d.nanos / 1e9;
  if (seconds !== 0 && seconds < 1800) throw invalidArgument(field, "must be 0s (no timeout) or at least 1800s");
}

function checkPorts(field: string, ports: EnvironmentSpec["ports"]) {
  ports.forEach((p, i) => {
    if (p.port < 1024 || p.port > 65535) throw invalidArgument(`${field}[${i}].port`, "must be 1024 to 65535");
    if (p.name.length < 1 || p.name.length > 100) throw invalidArgument(`${field}[${i}].name`, "must be 1 to 100 characters");
  });
}

function checkUrl(field: string, url: string) {
  if (!URL.canParse(url)) throw invalidArgument(field, `${quote(url)} is not a URL`);
}

/** The spec of a Create request, as Gitpod's proto constrains it. */
export function checkSpec(spec: EnvironmentSpec): void {
  spec.content?.initializer?.specs.forEach((s, i) => {
    const at = `spec.content.initializer.specs[${i}]`;
    if (s.spec.case === undefined) throw invalidArgument(at, "set git or contextUrl");
    if (s.spec.case === "contextUrl") checkUrl(`${at}.context_url.url`, s.spec.value.url);
  });
  spec.secrets.forEach((s, i) => {
    if (s.mount.case === undefined) throw invalidArgument(`spec.secrets[${i}].mount`, "is required: a file path, environment variable, git credential host or registry host");
  });
  checkPorts("spec.ports", spec.ports);
  checkTimeout("spec.timeout.disconnected", spec.timeout?.disconnected);
  relative("spec.devcontainer.devcontainer_file_path", spec.devcontainer?.devcontainerFilePath ?? "");
  if (spec.devcontainer?.dotfiles) checkUrl("spec.devcontainer.dotfiles.repository", spec.devcontainer.dotfiles.repository);
  relative("spec.automations_file.automations_file_path", spec.automationsFile?.automationsFilePath ?? "");
  spec.sshPublicKeys.forEach((k, i) => {
    if (!k.id || !k.value) throw invalidArgument(`spec.ssh_public_keys[${i}]`, "needs an id and a value");
  });
}

/** An UpdateEnvironment request, as Gitpod's proto constrains it. */
export function checkUpdate(req: UpdateEnvironmentRequest): void {
  if (req.metadata?.name !== undefined && req.metadata.name.length > 128) throw invalidArgument("metadata.name", "must be at most 128 characters");
  if (req.metadata?.lockdownAt) throw invalidArgument("metadata.lockdown_at", "is not supported: edgeplane has no policy that locks environments down");
  const spec = req.spec;
  if (!spec) return;
  spec.content?.initializer?.specs.forEach((s, i) => {
    if (s.spec.case === undefined) throw invalidArgument(`spec.content.initializer.specs[${i}]`, "set git or contextUrl");
  });
  checkPorts("spec.ports", spec.ports);
  checkTimeout("spec.timeout.disconnected", spec.timeout?.disconnected);
  relative("spec.devcontainer.devcontainer_file_path", spec.devcontainer?.devcontainerFilePath ?? "");
  relative("spec.automations_file.automations_file_path", spec.automationsFile?.automationsFilePath ?? "");
  spec.sshPublicKeys.forEach((k, i) => {
    if (!k.id) throw invalidArgument(`spec.ssh_public_keys[${i}].id`, "is required");
  });
}

/** A name for an environment created without one: its repository's, else one from its id. */
export function defaultName(spec: EnvironmentSpec, id: string): string {
  const first = spec.content?.initializer?.specs[0]?.spec;
  const url = first?.case === "git" ? first.value.remoteUri : first?.case === "contextUrl" ? first.value.url : "";
  const repo = url.replace(/\.git$/, "").split(/[/:]/).filter(Boolean).pop();
  return (repo || `environment-${id.slice(-6)}`).slice(0, 80);
}
