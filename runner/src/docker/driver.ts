/**
 * The Docker driver: capsules as labelled containers on one Docker Engine, reached through
 * its API (dockerode). It owns only what carries its labels for its environment, and adopts
 * those after a restart: containers keep running while the runner is away.
 */
import { Readable } from "node:stream";
import Docker from "dockerode";
import type { MetricSample, ReportedInstance } from "../../../proto/frames/runner";
import type { Applied, CapsuleRef, DesiredRollout, Driver, ExecOutput, ExecRequest, ExecSession, Reporter } from "../driver";
import { log, reason } from "../log";
import { CapsuleController, type DriverContext } from "./capsule";
import { containerSpec } from "./container-spec";
import type { CapsuleTemplate } from "./jobs";
import { startExec } from "./exec";
import { filterFor, LABEL, networkName } from "./labels";
import { cpuMillisUsed, memoryUsed } from "./stats";

export interface DockerDriverOptions {
  dockerHost: string;
  environmentId: string;
  probeIntervalMs: number;
  drainMs: number;
  orphanGraceMs: number;
  metricsIntervalMs: number;
  listenHost: string;
}

/** A Docker client for `--docker-host`: a socket path or unix://, tcp:// or http(s):// address. */
export function dockerClient(host: string): Docker {
  if (host.startsWith("unix://")) return new Docker({ socketPath: host.slice("unix://".length) });
  if (host.startsWith("/")) return new Docker({ socketPath: host });
  const u = new URL(host.replace(/^tcp:/, "http:"));
  return new Docker({ host: u.hostname, port: Number(u.port || (u.protocol === "https:" ? 2376 : 2375)), protocol: u.protocol === "https:" ? "https" : "http" });
}

const keyOf = (ref: CapsuleRef) => `${ref.projectId}/${ref.capsuleId}`;

export class DockerDriver implements Driver {
  readonly docker: Docker;
  private ctx: DriverContext | null = null;
  private readonly capsules = new Map<string, CapsuleController>();
  /** Capsules found on the host that edgeplane has not (yet) said anything about, and since when. */
  private readonly unclaimed = new Map<string, number>();
  private synced = false;
  private events: Readable | null = null;
  private metricsTimer: NodeJS.Timeout | null = null;
  private orphanTimer: NodeJS.Timeout | null = null;
  private lastCpu = new Map<string, { ms: number; at: number }>();

  constructor(private readonly o: DockerDriverOptions) {
    this.docker = dockerClient(o.dockerHost);
  }

  /** Checks that the engine answers; throws with a one-line reason. */
  async ping(): Promise<string> {
    try {
      await this.docker.ping();
      const v = await this.docker.version();
      return `Docker ${v.Version} (API ${v.ApiVersion})`;
    } catch (e) {
      throw new Error(`cannot reach Docker at ${this.o.dockerHost}: ${reason(e)}`);
    }
  }

  async start(reporter: Reporter): Promise<void> {
    const info = await this.docker.info();
    const network = await this.ensureNetwork();
    this.ctx = {
      docker: this.docker,
      environmentId: this.o.environmentId,
      network,
      reporter,
      probeIntervalMs: this.o.probeIntervalMs,
      drainMs: this.o.drainMs,
      listenHost: this.o.listenHost,
      node: info.Name,
    };
    // Adopt: every capsule with containers here gets its controller, and nothing is restarted.
    const found = await this.docker.listContainers({ all: true, filters: filterFor(this.o.environmentId) });
    for (const c of found) {
      const ref = { projectId: c.Labels[LABEL.project] ?? "", capsuleId: c.Labels[LABEL.capsule] ?? "" };
      if (!ref.projectId || !ref.capsuleId) continue;
      if (!this.capsules.has(keyOf(ref))) {
        this.controller(ref).poke();
        this.unclaimed.set(keyOf(ref), Date.now());
      }
    }
    if (found.length > 0) log("info", `adopted ${found.length} container(s) of ${this.capsules.size} capsule(s)`);
    await this.watchEvents();
    this.metricsTimer = setInterval(() => void this.sampleMetrics().catch((e) => log("warn", `metrics: ${reason(e)}`)), this.o.metricsIntervalMs);
    this.orphanTimer = setInterval(() => void this.removeOrphans(), Math.max(1000, Math.min(this.o.orphanGraceMs, 30_000)));
  }

  async apply(desired: DesiredRollout): Promise<Applied> {
    this.unclaimed.delete(keyOf(desired.ref));
    return this.controller(desired.ref).apply(desired);
  }

  async stop(ref: CapsuleRef, rolloutId: number): Promise<void> {
    await this.capsules.get(keyOf(ref))?.stop(rolloutId);
    this.forgetIfIdle(ref);
  }

  async retain(capsules: { ref: CapsuleRef; rolloutId: number }[]): Promise<void> {
    const wanted = new Set(capsules.map((c) => keyOf(c.ref)));
    this.synced = true;
    for (const [key, c] of this.capsules) {
      if (wanted.has(key)) continue;
      // edgeplane said what it wants, and this is not in it (stopped while the runner was away).
      log("info", `${key} is no longer deployed here; removing its containers`);
      this.unclaimed.delete(key);
      await c.remove();
      this.forgetIfIdle(c.ref);
    }
  }

  async restartInstance(ref: CapsuleRef, instanceId: string): Promise<void> {
    await this.capsules.get(keyOf(ref))?.restartInstance(instanceId);
  }

  async exec(request: ExecRequest, out: ExecOutput): Promise<ExecSession> {
    const containerId = this.capsules.get(keyOf(request.ref))?.containerOf(request.instanceId);
    if (!containerId) throw new Error(`instance ${request.instanceId} of ${keyOf(request.ref)} is not running here`);
    return startExec(this.docker.getContainer(containerId), request, out);
  }

  /** The container spec of the capsule's desired rollout, for its command cron jobs. */
  template(ref: CapsuleRef): CapsuleTemplate | undefined {
    const desired = this.capsules.get(keyOf(ref))?.desiredRollout;
    if (!desired || !this.ctx) return undefined;
    return { rolloutId: desired.rolloutId, spec: containerSpec(desired.config, this.ctx.network) };
  }

  current(): { ref: CapsuleRef; instances: ReportedInstance[] }[] {
    return [...this.capsules.values()].map((c) => ({ ref: c.ref, instances: c.current() }));
  }

  async close(): Promise<void> {
    if (this.metricsTimer) clearInterval(this.metricsTimer);
    if (this.orphanTimer) clearInterval(this.orphanTimer);
    this.events?.destroy();
    await Promise.all([...this.capsules.values()].map((c) => c.close()));
  }

  private controller(ref: CapsuleRef): CapsuleController {
    const key = keyOf(ref);
    let c = this.capsules.get(key);
    if (!c) {
      if (!this.ctx) throw new Error("the Docker driver has not started");
      c = new CapsuleController(this.ctx, { projectId: ref.projectId, capsuleId: ref.capsuleId });
      this.capsules.set(key, c);
    }
    return c;
  }

  private forgetIfIdle(ref: CapsuleRef): void {
    const c = this.capsules.get(keyOf(ref));
    if (c?.idle) {
      this.capsules.delete(keyOf(ref));
      void c.close();
    }
  }

  /**
   * Containers of capsules edgeplane never claimed (no `desired`, and none listed in
   * `synced` yet, e.g. while edgeplane is unreachable) are removed only after the grace
   * period, so a runner that restarts never kills what it is about to be told to keep.
   */
  private async removeOrphans(): Promise<void> {
    const now = Date.now();
    for (const [key, since] of this.unclaimed) {
      if (now - since < this.o.orphanGraceMs) continue;
      const c = this.capsules.get(key);
      this.unclaimed.delete(key);
      if (!c || c.rolloutId !== null || this.synced) continue;
      log("info", `${key}: no one claimed its containers for ${this.o.orphanGraceMs} ms; removing them`);
      await c.remove().catch((e) => log("warn", `${key}: ${reason(e)}`));
      this.forgetIfIdle(c.ref);
    }
  }

  private async ensureNetwork(): Promise<string> {
    const name = networkName(this.o.environmentId);
    const existing = await this.docker.listNetworks({ filters: { label: filterFor(this.o.environmentId).label } });
    if (existing.some((n) => n.Name === name)) return name;
    await this.docker.createNetwork({
      Name: name,
      Driver: "bridge",
      CheckDuplicate: true,
      Labels: { [LABEL.managed]: "true", [LABEL.environment]: this.o.environmentId },
    });
    return name;
  }

  /** Docker's container events (start, die, destroy…) wake the capsule they are about, so changes show within moments. */
  private async watchEvents(): Promise<void> {
    const stream = await this.docker.getEvents({ filters: { type: ["container"], label: filterFor(this.o.environmentId).label } });
    if (!(stream instanceof Readable)) throw new Error("the engine's event stream is not readable");
    this.events = stream;
    let rest = "";
    stream.on("data", (chunk: Buffer) => {
      const parts = (rest + chunk.toString("utf8")).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        try {
          const e = JSON.parse(line) as { Actor?: { Attributes?: Record<string, string> } };
          const a = e.Actor?.Attributes ?? {};
          this.capsules.get(`${a[LABEL.project]}/${a[LABEL.capsule]}`)?.poke();
        } catch {
          // Not an event line.
        }
      }
    });
    stream.on("error", (e) => log("warn", `Docker events: ${reason(e)}`));
  }

  /** One stats sample per running container: CPU time used and memory, sent as `metrics`; CPU utilization feeds the autoscaler. */
  private async sampleMetrics(): Promise<void> {
    const ctx = this.ctx;
    if (!ctx) return;
    for (const c of this.capsules.values()) {
      const samples: MetricSample[] = [];
      const utilization = new Map<string, number>();
      for (const x of c.containers()) {
        try {
          const stats = await this.docker.getContainer(x.containerId).stats({ stream: false });
          const cpuMs = cpuMillisUsed(stats);
          const now = Date.now();
          const before = this.lastCpu.get(x.containerId);
          this.lastCpu.set(x.containerId, { ms: cpuMs, at: now });
          if (before && now > before.at) utilization.set(x.instanceId, (100 * (cpuMs - before.ms)) / ((now - before.at) * ((x.cpuMillis || 1000) / 1000)));
          samples.push({ instanceId: x.instanceId, time: new Date(now).toISOString(), cpuMs, memoryBytes: memoryUsed(stats) });
        } catch {
          // Stopped meanwhile.
        }
      }
      ctx.reporter.metrics(c.ref, samples);
      c.cpuSample(utilization);
    }
  }
}
