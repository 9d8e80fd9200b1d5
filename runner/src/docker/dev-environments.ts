/**
 * Developer environments on Docker. The machine of a developer environment is one container
 * (the spec's default devcontainer image, else the runner's: this runner does not build or
 * read devcontainer files), pulled when missing, with
 * a named volume mounted at /workspace for its content. `environment-desired` is applied
 * level-triggered, one at a time, newest first: running creates the volume and container,
 * starts it, clones the git content once and reports the port URLs; stopped stops the
 * container; deleted removes container and volume. Every phase is reported as it is entered.
 * The container and volume carry the environment in labels, so a restarted runner finds the
 * machine and reports it as it is, without restarting it.
 */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import type Docker from "dockerode";
import {
  EnvironmentSpecSchema,
  type EnvironmentSpec,
  EnvironmentStatus_ContentPhase as ContentPhase,
  EnvironmentStatusSchema,
  type EnvironmentStatus,
} from "../../../proto/gen/gitpod/v1/environment_pb";
import type { EnvironmentRunPhase, RunnerMessage, ServerMessage } from "../../../proto/frames/runner";
import { labelFilters } from "./jobs";
import { runIn, shell } from "./machine-process";

type Desired = Extract<ServerMessage, { type: "environment-desired" }>;

export const MACHINE_LABELS = {
  kind: "dev.edgeplane.kind",
  environment: "dev.edgeplane.dev-environment",
  /** Image and ports the container was created with: a change needs a new container. */
  shape: "dev.edgeplane.machine-shape",
} as const;
export const MACHINE_KIND = "dev-environment";

/** Where the volume is mounted in the machine; the git content is cloned below it. */
export const WORKSPACE = "/workspace";

/**
 * Keeps the machine up whatever the image's own command is, and ends at once on SIGTERM
 * (PID 1 has no default signal handling): what the devcontainer CLI runs in its containers.
 */
const KEEP_ALIVE = ["/bin/sh", "-c", "echo Container started; trap 'exit 0' TERM; while sleep 1 & wait $!; do :; done"];

export interface DevEnvironmentDeps {
  docker: Docker;
  send: (msg: RunnerMessage) => void;
  /** Labels that mark containers and volumes of this runner, added to the machine's. */
  ownerLabels: Record<string, string>;
  /** The machine's image (the runner's `--dev-image`). */
  image: string;
  /** The host address ports are published on, and the host name in the port URLs. */
  bindAddress: string;
  publicHost: string;
  /** Called before the running machine's container is stopped or removed (the automations stop what runs in it). */
  beforeStop?: () => Promise<void>;
}

/** The running machine, for the automations. */
export interface Machine {
  container: Docker.Container;
  /** Where commands run: the cloned repository, or the workspace. */
  workingDir: string;
}

export class DevEnvironments {
  private pending: Desired | null = null;
  private working = false;
  private machine: Machine | null = null;
  private readonly waiters = new Set<(m: Machine) => void>();

  constructor(private readonly deps: DevEnvironmentDeps) {}

  /** `environment-desired`: applied after whatever is being applied now; a newer one replaces one still waiting. */
  desired(msg: Desired): void {
    this.pending = msg;
    if (!this.working) void this.drain();
  }

  /** The running machine, once there is one; null if none comes within `timeoutMs`. */
  running(timeoutMs: number): Promise<Machine | null> {
    if (this.machine) return Promise.resolve(this.machine);
    return new Promise((ok) => {
      const done = (m: Machine | null) => {
        clearTimeout(timer);
        this.waiters.delete(done);
        ok(m);
      };
      const timer = setTimeout(() => done(null), timeoutMs);
      this.waiters.add(done);
    });
  }

  private setMachine(m: Machine | null): void {
    this.machine = m;
    if (m) for (const w of [...this.waiters]) w(m);
  }

  private async drain(): Promise<void> {
    this.working = true;
    try {
      while (this.pending) {
        const msg = this.pending;
        this.pending = null;
        await this.apply(msg).catch((err: unknown) =>
          // Once deleting, only deleting may be reported: the failure stays visible there until a retry succeeds.
          this.report(msg, msg.desiredPhase === "deleted" ? "deleting" : "stopped", { failureMessage: [`the runner could not ${verb[msg.desiredPhase]} the machine: ${reason(err)}`] }),
        );
      }
    } finally {
      this.working = false;
    }
  }

  private report(msg: Desired, phase: EnvironmentRunPhase, extra: { failureMessage?: string[]; warningMessage?: string[]; status?: EnvironmentStatus } = {}): void {
    const { status, ...messages } = extra;
    this.deps.send({
      type: "environment-status",
      specVersion: msg.specVersion,
      phase,
      ...messages,
      ...(status ? { status: toJson(EnvironmentStatusSchema, status) } : {}),
    });
  }

  private async apply(msg: Desired): Promise<void> {
    const spec = fromJson(EnvironmentSpecSchema, (msg.spec ?? {}) as JsonValue, { ignoreUnknownFields: true });
    const names = this.names(msg.environmentId);
    const existing = await this.find(msg.environmentId);
    if (msg.desiredPhase === "deleted") {
      if (existing?.State === "running") {
        // A running machine is stopped first, as the server's DeleteEnvironment expects (STOPPING, then DELETING).
        this.report(msg, "stopping");
        await this.deps.beforeStop?.();
        this.setMachine(null);
        await this.deps.docker.getContainer(existing.Id).stop({ t: 10 }).catch(ignoreNotRunning);
      }
      this.setMachine(null);
      this.report(msg, "deleting");
      if (existing) await this.deps.docker.getContainer(existing.Id).remove({ force: true, v: false });
      await this.deps.docker.getVolume(names.volume).remove().catch(ignoreMissing);
      return this.report(msg, "deleted");
    }
    if (msg.desiredPhase === "stopped") {
      if (existing?.State === "running") {
        this.report(msg, "stopping");
        await this.deps.beforeStop?.();
        this.setMachine(null);
        await this.deps.docker.getContainer(existing.Id).stop({ t: 10 }).catch(ignoreNotRunning);
      }
      this.setMachine(null);
      return this.report(msg, "stopped");
    }
    const image = spec.devcontainer?.defaultDevcontainerImage || this.deps.image;
    const shape = JSON.stringify({ image, ports: spec.ports.map((p) => p.port).sort((a, b) => a - b) });
    let container = existing ? this.deps.docker.getContainer(existing.Id) : null;
    if (existing && existing.Labels[MACHINE_LABELS.shape] !== shape) {
      // New ports mean new published ports, which Docker fixes at creation: a new container on the same volume.
      this.report(msg, existing.State === "running" ? "updating" : "starting");
      if (existing.State === "running") await this.deps.beforeStop?.();
      this.setMachine(null);
      await container!.remove({ force: true });
      container = null;
    }
    if (!container) {
      const volumeExisted = await this.deps.docker.getVolume(names.volume).inspect().then(() => true, () => false);
      if (!existing) this.report(msg, volumeExisted ? "starting" : "creating");
      const missing = await this.ensureImage(image);
      if (missing) return this.report(msg, "stopped", { failureMessage: [missing] });
      if (!volumeExisted) await this.deps.docker.createVolume({ Name: names.volume, Labels: this.labels(msg.environmentId) });
      container = await this.create(msg.environmentId, image, spec, shape, names);
    } else if (existing?.State !== "running") {
      this.report(msg, "starting");
    }
    const info = await container.inspect();
    if (!info.State.Running) await container.start();
    const content = await this.initializeContent(container, image, spec);
    if (content.failure) {
      // A machine without the content it was asked for has failed: it is stopped, its volume kept for a retry.
      await container.stop({ t: 10 }).catch(ignoreNotRunning);
      this.setMachine(null);
      return this.report(msg, "stopped", { failureMessage: [content.failure], status: this.status(image, spec, content, []) });
    }
    const ports = await this.portUrls(container, spec);
    this.setMachine({ container, workingDir: content.location });
    this.report(msg, "running", { status: this.status(image, spec, content, ports) });
  }

  private names(environmentId: string) {
    const safe = environmentId.replace(/[^a-zA-Z0-9_.-]+/g, "-");
    return { container: `edgeplane-env-${safe}`, volume: `edgeplane-env-${safe}` };
  }

  private labels(environmentId: string): Record<string, string> {
    return { ...this.deps.ownerLabels, [MACHINE_LABELS.kind]: MACHINE_KIND, [MACHINE_LABELS.environment]: environmentId };
  }

  private async find(environmentId: string): Promise<Docker.ContainerInfo | undefined> {
    const found = await this.deps.docker.listContainers({ all: true, filters: { label: labelFilters(this.labels(environmentId)) } });
    return found[0];
  }

  /** Pulls `image` when the host lacks it; answers why that failed, if it did. */
  private async ensureImage(image: string): Promise<string | undefined> {
    if (await this.deps.docker.getImage(image).inspect().then(() => true, () => false)) return undefined;
    try {
      const stream = await this.deps.docker.pull(image);
      await new Promise<void>((ok, fail) => this.deps.docker.modem.followProgress(stream, (err) => (err ? fail(err) : ok())));
      return undefined;
    } catch (err) {
      return `the machine's image ${image} is not on the Docker host and could not be pulled: ${reason(err)}`;
    }
  }

  private async create(environmentId: string, image: string, spec: EnvironmentSpec, shape: string, names: { container: string; volume: string }): Promise<Docker.Container> {
    const exposed = Object.fromEntries(spec.ports.map((p) => [`${p.port}/tcp`, {}]));
    const bindings = Object.fromEntries(spec.ports.map((p) => [`${p.port}/tcp`, [{ HostIp: this.deps.bindAddress, HostPort: "" }]]));
    return this.deps.docker.createContainer({
      name: names.container,
      Image: image,
      Cmd: KEEP_ALIVE,
      Entrypoint: [],
      WorkingDir: WORKSPACE,
      Labels: { ...this.labels(environmentId), [MACHINE_LABELS.shape]: shape },
      ExposedPorts: exposed,
      HostConfig: {
        Mounts: [{ Type: "volume", Source: names.volume, Target: WORKSPACE }],
        PortBindings: bindings,
        // The machine comes back with the Docker host; Stop is what stops it.
        RestartPolicy: { Name: "unless-stopped" },
      },
    });
  }

  /**
   * Clones the first git initializer's repository into the workspace once (a later start
   * finds it there). Without a git initializer the workspace is the content.
   */
  private async initializeContent(container: Docker.Container, image: string, spec: EnvironmentSpec): Promise<Content> {
    const git = spec.content?.initializer?.specs.map((s) => (s.spec.case === "git" ? s.spec.value : undefined)).find(Boolean);
    const ignored = spec.content?.initializer?.specs.some((s) => s.spec.case === "contextUrl") ? "context URL initializers are not supported by this runner and were skipped" : undefined;
    if (!git?.remoteUri) return { location: WORKSPACE, phase: ContentPhase.READY, warning: ignored };
    const dir = git.checkoutLocation || git.remoteUri.replace(/\/+$/, "").split("/").pop()!.replace(/\.git$/, "") || "content";
    const location = `${WORKSPACE}/${dir.replace(/^\/+/, "")}`;
    const cloned = await runIn(container, ["test", "-d", `${location}/.git`]);
    if (cloned.exitCode === 0) return { location, phase: ContentPhase.READY, warning: ignored };
    const hasGit = await runIn(container, shell("command -v git"));
    if (hasGit.exitCode !== 0) {
      return { location, phase: ContentPhase.FAILED, failure: `content: cannot clone ${git.remoteUri}: the machine's image (${image}) has no git` };
    }
    const branch = git.cloneTarget && git.targetMode !== 2 ? ["--branch", git.cloneTarget] : [];
    const clone = await runIn(container, ["git", "clone", ...branch, "--", git.remoteUri, location]);
    if (clone.exitCode !== 0) {
      return { location, phase: ContentPhase.FAILED, failure: `content: git clone ${git.remoteUri} failed (exit code ${clone.exitCode}): ${clone.output.trim().split("\n").slice(-3).join(" ")}` };
    }
    return { location, phase: ContentPhase.READY, warning: ignored };
  }

  /** The host ports Docker picked for the spec's ports, as URLs. */
  private async portUrls(container: Docker.Container, spec: EnvironmentSpec): Promise<{ port: number; url: string }[]> {
    const published = (await container.inspect()).NetworkSettings.Ports ?? {};
    return spec.ports.flatMap((p) => {
      const hostPort = published[`${p.port}/tcp`]?.[0]?.HostPort;
      return hostPort ? [{ port: p.port, url: `http://${this.deps.publicHost}:${hostPort}` }] : [];
    });
  }

  /**
   * What the machine knows: port URLs, content, and, honestly, what this runner does not do:
   * no SSH (no URL, keys failed) and no devcontainer files (the default image runs).
   */
  private status(image: string, spec: EnvironmentSpec, content: Content, ports: { port: number; url: string }[]): EnvironmentStatus {
    return create(EnvironmentStatusSchema, {
      environmentUrls: { ports },
      content: {
        session: spec.content?.session ?? "",
        phase: content.phase,
        contentLocationInMachine: content.location,
        failureMessage: content.failure ?? "",
        warningMessage: content.warning ?? "",
      },
      secrets: spec.secrets.map((x) => ({
        id: x.id,
        secretName: x.name,
        session: x.session,
        phase: ContentPhase.FAILED,
        failureMessage: "secrets are not provided to the machine by this runner",
      })),
      // FAILED, not UNAVAILABLE: clients waiting for a key to apply (the SDK's waitForSshKeyApplied) learn at once that it never will.
      sshPublicKeys: spec.sshPublicKeys.map((k) => ({ id: k.id, phase: ContentPhase.FAILED })),
      warningMessage: [
        ...(content.warning ? [content.warning] : []),
        ...(spec.sshPublicKeys.length ? ["SSH is not served by this runner: the SSH keys are not installed and there is no SSH URL"] : []),
        ...(spec.devcontainer?.devcontainerFilePath ? [`devcontainer files are not read by this runner: the machine runs ${image}`] : []),
      ],
    });
  }
}

interface Content {
  location: string;
  phase: ContentPhase;
  failure?: string;
  warning?: string;
}

const verb = { running: "start", stopped: "stop", deleted: "delete" } as const;
const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).replace(/^\(HTTP code \d+\)\s*\S+\s*-\s*/, "");
const statusOf = (err: unknown) => (typeof err === "object" && err !== null && "statusCode" in err ? Number(err.statusCode) : 0);
/** Removing what is already gone is done. */
const ignoreMissing = (err: unknown) => {
  if (statusOf(err) !== 404) throw err;
};
/** Stopping what is not running (304) is done. */
const ignoreNotRunning = (err: unknown) => {
  if (statusOf(err) !== 304 && statusOf(err) !== 404) throw err;
};
