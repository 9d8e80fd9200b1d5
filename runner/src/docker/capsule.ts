/**
 * One capsule on the Docker host: keeps its containers where its desired rollout says
 * (level-triggered: every pass compares Docker's actual containers with the desired
 * rollout), probes them, balances each interface over the ready ones, replaces rollouts
 * without downtime, and reports the instances.
 *
 * Rolling replacement: a new rollout's replicas start beside the old ones; each old replica
 * is taken out of its balancers only once a new one is ready to take its place, then drains
 * (open connections finish, up to `drainMs`) and is removed. A new rollout that never gets
 * ready leaves the old one serving.
 */
import type Docker from "dockerode";
import type { Interface, InterfaceProbe } from "../../../proto/gen/api/v1/capsule/change_pb";
import type { RolloutConfig } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import type { ReportedInstance } from "../../../proto/frames/runner";
import { type Applied, ApplyFailed, type CapsuleRef, type DesiredRollout, type Reporter } from "../driver";
import { log, reason } from "../log";
import { type Autoscaler, createAutoscaler } from "./autoscale";
import { containerSpec, putConfigFiles } from "./container-spec";
import { ensureImage } from "./image";
import { containerName, filterFor, LABEL } from "./labels";
import { LogFollower } from "./logs";
import { probe } from "./probes";
import { Balancer } from "./proxy";

/** What every capsule of the driver shares. */
export interface DriverContext {
  docker: Docker;
  environmentId: string;
  network: string;
  reporter: Reporter;
  probeIntervalMs: number;
  drainMs: number;
  listenHost: string;
  /** The host name reported as each instance's node. */
  node: string;
}

/** Liveness failures in a row after which a replica is restarted (as Kubernetes' default failureThreshold). */
const LIVENESS_FAILURES = 3;

interface Instance {
  containerId: string;
  instanceId: string;
  rolloutId: number;
  slot: number;
  ip: string | null;
  running: boolean;
  restarting: boolean;
  exitCode: number;
  dockerRestarts: number;
  /** Restarts the runner did itself (liveness), not in Docker's count. */
  ownRestarts: number;
  startedAt: string;
  ready: boolean;
  message: string;
  livenessFailures: number;
  /** When the runner may start it again itself, if it stopped and Docker does not restart it (ms). */
  nextStartAt: number;
  /** Since when it receives no new connections (ms), or null while it serves. */
  drainingSince: number | null;
  logs: LogFollower;
}

export class CapsuleController {
  private desired: DesiredRollout | null = null;
  /**
   * Whether edgeplane has said anything about the capsule since the runner started. Until it
   * has, adopted containers are watched and reported but never changed: they may be exactly
   * what the next `desired` asks for.
   */
  private claimed = false;
  private readonly instances = new Map<string, Instance>();
  /** Balancers by container port. */
  private readonly balancers = new Map<number, Balancer>();
  private running: Promise<void> = Promise.resolve();
  private rerun = false;
  private busy = false;
  private lastReport = "";
  private report: ReportedInstance[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private autoscaler: Autoscaler | null = null;

  constructor(
    private readonly ctx: DriverContext,
    readonly ref: CapsuleRef,
  ) {
    this.timer = setInterval(() => this.poke(), ctx.probeIntervalMs);
  }

  /** The instances as last reported. */
  current(): ReportedInstance[] {
    return this.report;
  }

  /** Whether the capsule has nothing left on the host and nothing desired. */
  get idle(): boolean {
    return this.claimed && this.desired === null && this.instances.size === 0;
  }

  /** The rollout the capsule should run, if any (its command cron jobs run in its configuration). */
  get desiredRollout(): DesiredRollout | null {
    return this.desired;
  }

  get rolloutId(): number | null {
    return this.desired?.rolloutId ?? null;
  }

  /** Makes `desired` what runs; returns once its containers exist. */
  async apply(desired: DesiredRollout): Promise<Applied> {
    const image = desired.config.imageId;
    if (!image) throw new ApplyFailed("the rollout has no image");
    // What a Docker host cannot do fails the rollout, rather than run something other than asked.
    const sources = desired.config.containerSettings?.environmentSources ?? [];
    if (sources.length > 0) throw new ApplyFailed(`environment sources (${sources.map((x) => x.name).join(", ")}) name ConfigMaps or Secrets, which a Docker host does not have`);
    if (desired.config.containerSettings?.resources?.gpuLimits?.count) throw new ApplyFailed("GPU limits are not supported by the Docker runner");
    await ensureImage(this.ctx.docker, image, desired.registries);
    const ports = await this.openBalancers(desired.config);
    if (this.desired?.rolloutId !== desired.rolloutId) this.autoscaler = createAutoscaler(desired.config);
    this.desired = desired;
    this.claimed = true;
    await this.pass();
    const names = [...this.instances.values()].filter((i) => i.rolloutId === desired.rolloutId).map((i) => containerName(this.ctx.environmentId, this.ref, i.instanceId));
    return {
      resources: [
        { kind: "Network", name: this.ctx.network },
        ...names.sort().map((name) => ({ kind: "Container", name })),
        ...[...ports].map(([port, hostPort]) => ({ kind: "Balancer", name: `${this.ctx.listenHost}:${hostPort}->${port}` })),
      ],
      endpoints: [...ports].map(([port, hostPort]) => ({ port, url: `http://${this.ctx.listenHost}:${hostPort}` })),
    };
  }

  /** Removes the rollout's containers (all of the capsule's, when it is the desired one). */
  async stop(rolloutId: number): Promise<void> {
    if (this.desired?.rolloutId === rolloutId) this.desired = null;
    this.claimed = true;
    await this.pass((i) => i.rolloutId === rolloutId);
  }

  /** Removes everything of the capsule. */
  async remove(): Promise<void> {
    this.desired = null;
    this.claimed = true;
    await this.pass(() => true);
  }

  async restartInstance(instanceId: string): Promise<void> {
    const i = [...this.instances.values()].find((x) => x.instanceId === instanceId);
    if (!i) return;
    await this.ctx.docker.getContainer(i.containerId).restart({ t: 5 });
    i.ready = false;
    i.logs.nudge();
    this.poke();
  }

  /** The container of an instance, for Execute. */
  containerOf(instanceId: string): string | null {
    return [...this.instances.values()].find((x) => x.instanceId === instanceId && x.running)?.containerId ?? null;
  }

  /** A CPU sample for the autoscaler: utilization of each instance in percent of its CPU limit (or one core). */
  cpuSample(byInstance: Map<string, number>): void {
    if (!this.autoscaler || !this.desired) return;
    const own = [...this.instances.values()].filter((i) => i.rolloutId === this.desired!.rolloutId && i.running).map((i) => byInstance.get(i.instanceId) ?? 0);
    if (this.autoscaler.sample(own)) this.poke();
  }

  /** Containers the capsule runs now, for metrics. */
  containers(): { containerId: string; instanceId: string; cpuMillis: number }[] {
    const limit = this.desired?.config.containerSettings?.resources?.limits?.cpuMillis ?? 0;
    return [...this.instances.values()].filter((i) => i.running).map((i) => ({ containerId: i.containerId, instanceId: i.instanceId, cpuMillis: limit }));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
    for (const i of this.instances.values()) i.logs.close();
    for (const b of this.balancers.values()) await b.close();
    this.balancers.clear();
  }

  /** Schedules a pass soon (a Docker event, a tick). */
  poke(): void {
    if (this.closed) return;
    if (this.busy) {
      this.rerun = true;
      return;
    }
    void this.pass().catch((e) => log("error", `${this.name()}: ${reason(e)}`));
  }

  /** One reconcile pass at a time; `removeAlso` names instances to remove whatever the desired state says. */
  private pass(removeAlso?: (i: Instance) => boolean): Promise<void> {
    const run = this.running.then(async () => {
      this.busy = true;
      try {
        do {
          this.rerun = false;
          await this.reconcile(removeAlso);
        } while (this.rerun && !this.closed);
      } finally {
        this.busy = false;
      }
    });
    this.running = run.catch(() => {});
    return run;
  }

  private name(): string {
    return `${this.ref.projectId}/${this.ref.capsuleId}`;
  }

  private async reconcile(removeAlso?: (i: Instance) => boolean): Promise<void> {
    await this.observe();
    if (!this.claimed) {
      await this.probeAll();
      this.sendReport();
      return;
    }
    const desired = this.desired;
    const removals: Instance[] = [];
    await this.startStopped();
    if (!desired) {
      removals.push(...this.instances.values());
    } else {
      const want = this.autoscaler ? this.autoscaler.replicas() : desired.config.replicas;
      const mine = [...this.instances.values()].filter((i) => i.rolloutId === desired.rolloutId);
      for (let slot = 0; slot < want; slot++) {
        if (!mine.some((i) => i.slot === slot)) await this.create(desired, slot);
      }
      removals.push(...mine.filter((i) => i.slot >= want));
      // Old replicas serve until as many new ones are ready as they are.
      const readyNew = [...this.instances.values()].filter((i) => i.rolloutId === desired.rolloutId && i.slot < want && i.ready).length;
      const old = [...this.instances.values()]
        .filter((i) => i.rolloutId !== desired.rolloutId)
        .sort((a, b) => Number(b.ready) - Number(a.ready) || b.rolloutId - a.rolloutId || a.slot - b.slot);
      const keep = Math.max(0, want - readyNew);
      removals.push(...old.slice(keep));
      if (removeAlso) removals.push(...[...this.instances.values()].filter(removeAlso));
    }
    await this.probeAll();
    const now = Date.now();
    for (const i of new Set(removals)) if (i.drainingSince === null) i.drainingSince = removeAlso?.(i) || !desired ? 0 : now;
    this.route();
    for (const i of [...this.instances.values()]) {
      if (i.drainingSince === null) continue;
      const idle = [...this.balancers.values()].every((b) => b.openTo(i.instanceId) === 0);
      if (idle || now - i.drainingSince >= this.ctx.drainMs) await this.removeInstance(i);
    }
    if (!desired && this.instances.size === 0) await this.closeBalancers(new Set());
    this.sendReport();
  }

  /** Reads the capsule's containers from Docker, adopting any it does not know yet. */
  private async observe(): Promise<void> {
    const listed = await this.ctx.docker.listContainers({ all: true, filters: filterFor(this.ctx.environmentId, this.ref) });
    const seen = new Set(listed.map((c) => c.Id));
    for (const [id, i] of this.instances) {
      if (!seen.has(id)) {
        i.logs.close();
        this.instances.delete(id);
      }
    }
    for (const c of listed) {
      const rolloutId = Number(c.Labels[LABEL.rollout]);
      const slot = Number(c.Labels[LABEL.slot]);
      const instanceId = c.Labels[LABEL.instance];
      if (!Number.isSafeInteger(rolloutId) || !Number.isSafeInteger(slot) || !instanceId) continue;
      let info: Docker.ContainerInspectInfo;
      try {
        info = await this.ctx.docker.getContainer(c.Id).inspect();
      } catch {
        continue;
      }
      let i = this.instances.get(c.Id);
      if (!i) {
        i = {
          containerId: c.Id,
          instanceId,
          rolloutId,
          slot,
          ip: null,
          running: false,
          restarting: false,
          exitCode: 0,
          dockerRestarts: 0,
          ownRestarts: 0,
          startedAt: "",
          ready: false,
          message: "",
          livenessFailures: 0,
          nextStartAt: 0,
          drainingSince: null,
          logs: new LogFollower(this.ctx.docker, c.Id, (lines) => this.ctx.reporter.log(this.ref, instanceId, lines)),
        };
        this.instances.set(c.Id, i);
      }
      const wasRunning = i.running;
      const startedBefore = i.startedAt;
      i.running = info.State.Running && !info.State.Restarting;
      i.restarting = info.State.Restarting;
      i.exitCode = info.State.ExitCode;
      i.dockerRestarts = info.RestartCount;
      i.startedAt = info.State.StartedAt;
      i.ip = info.NetworkSettings.Networks[this.ctx.network]?.IPAddress || null;
      if (!i.running) i.ready = false;
      if (i.running && (!wasRunning || startedBefore !== i.startedAt)) i.logs.nudge();
    }
  }

  /**
   * Starts replicas that stopped without Docker restarting them (`docker kill` or `stop` by
   * someone, a daemon restart): the rollout still wants them running. Counted as restarts,
   * with a backoff of their own.
   */
  private async startStopped(): Promise<void> {
    const now = Date.now();
    for (const i of this.instances.values()) {
      if (i.running || i.restarting || i.drainingSince !== null || now < i.nextStartAt) continue;
      i.ownRestarts++;
      i.nextStartAt = now + Math.min(30_000, 1000 * 2 ** Math.min(i.ownRestarts, 5));
      log("info", `${this.name()}: ${i.instanceId} stopped (exit code ${i.exitCode}) and Docker does not restart it; starting it`);
      await this.ctx.docker
        .getContainer(i.containerId)
        .start()
        .catch((e) => log("warn", `${this.name()}: starting ${i.instanceId}: ${reason(e)}`));
      i.logs.nudge();
    }
  }

  private async create(desired: DesiredRollout, slot: number): Promise<void> {
    const { config, rolloutId } = desired;
    const instanceId = `${this.ref.capsuleId}-${rolloutId}-${slot}`;
    const spec = containerSpec(config, this.ctx.network);
    const ports = Object.fromEntries([...this.balancers].map(([port, b]) => [String(port), b.port]));
    const name = containerName(this.ctx.environmentId, this.ref, instanceId);
    const container = await this.ctx.docker.createContainer({
      ...spec.options,
      name,
      Hostname: instanceId.slice(0, 63),
      Labels: {
        [LABEL.managed]: "true",
        [LABEL.environment]: this.ctx.environmentId,
        [LABEL.project]: this.ref.projectId,
        [LABEL.capsule]: this.ref.capsuleId,
        [LABEL.rollout]: String(rolloutId),
        [LABEL.instance]: instanceId,
        [LABEL.slot]: String(slot),
        [LABEL.ports]: JSON.stringify(ports),
      },
      HostConfig: {
        ...spec.options.HostConfig,
        // Docker restarts a crashed replica with its own backoff (doubling from 100 ms), counted in RestartCount.
        RestartPolicy: { Name: "always" },
      },
    });
    await putConfigFiles(container, spec.files);
    await container.start();
    log("info", `${this.name()}: started ${instanceId} (${name}) of rollout ${rolloutId}`);
  }

  private async removeInstance(i: Instance): Promise<void> {
    i.logs.close();
    try {
      await this.ctx.docker.getContainer(i.containerId).remove({ force: true, v: true });
    } catch (e) {
      if (!/no such container|404/i.test(reason(e))) throw e;
    }
    this.instances.delete(i.containerId);
    log("info", `${this.name()}: removed ${i.instanceId}`);
  }

  /** Runs the probes of every running replica and sets `ready`; restarts one whose liveness keeps failing. */
  private async probeAll(): Promise<void> {
    const interfaces = this.interfacesOf(this.desired?.config);
    await Promise.all(
      [...this.instances.values()].map(async (i) => {
        if (!i.running || !i.ip) {
          i.ready = false;
          i.message = i.restarting || (!i.running && i.startedAt && i.exitCode !== 0) ? `exited with code ${i.exitCode}; restarting with backoff` : i.running ? "" : "not running";
          return;
        }
        // Probes of the rollout the instance runs; an older rollout's replicas are judged by the current interfaces' ports.
        const readiness = interfaces.filter((x) => x.readiness?.kind.case);
        const liveness = interfaces.filter((x) => x.liveness?.kind.case);
        const failures: string[] = [];
        for (const x of readiness) {
          const r = await probe(x.readiness as InterfaceProbe, i.ip, x.port);
          if (r !== true) failures.push(r);
        }
        let alive = true;
        for (const x of liveness) {
          const r = await probe(x.liveness as InterfaceProbe, i.ip, x.port);
          if (r !== true) {
            alive = false;
            failures.push(`liveness: ${r}`);
          }
        }
        i.livenessFailures = alive ? 0 : i.livenessFailures + 1;
        i.ready = failures.length === 0;
        i.message = failures.join("; ");
        if (i.livenessFailures >= LIVENESS_FAILURES) {
          log("info", `${this.name()}: ${i.instanceId} failed liveness ${i.livenessFailures} times; restarting it`);
          i.livenessFailures = 0;
          i.ownRestarts++;
          i.ready = false;
          await this.ctx.docker.getContainer(i.containerId).restart({ t: 5 }).catch(() => {});
        }
      }),
    );
  }

  private interfacesOf(config: RolloutConfig | undefined): Interface[] {
    return (config?.network?.interfaces ?? []).filter((x) => x.port > 0 && x.port < 65536);
  }

  /** Listens on one host port per interface: the public load-balancer port, else the one the capsule had, else a free one. */
  private async openBalancers(config: RolloutConfig): Promise<Map<number, number>> {
    const known = new Map<number, number>();
    for (const i of this.instances.values()) {
      try {
        const info = await this.ctx.docker.getContainer(i.containerId).inspect();
        for (const [k, v] of Object.entries(JSON.parse(info.Config.Labels[LABEL.ports] ?? "{}") as Record<string, unknown>)) {
          if (typeof v === "number") known.set(Number(k), v);
        }
      } catch {
        // Gone meanwhile.
      }
    }
    const wanted = new Map<number, number>();
    for (const x of this.interfacesOf(config)) {
      const lb = x.public?.enabled !== false && x.public?.method?.kind.case === "loadBalancer" ? x.public.method.kind.value.port : 0;
      const hostPort = lb || this.balancers.get(x.port)?.port || known.get(x.port) || 0;
      const existing = this.balancers.get(x.port);
      if (existing && existing.port !== hostPort) {
        await existing.close();
        this.balancers.delete(x.port);
      }
      if (!this.balancers.has(x.port)) {
        try {
          this.balancers.set(x.port, await Balancer.listen(this.ctx.listenHost, hostPort, `${this.name()}:${x.name || x.port}`));
        } catch (e) {
          throw new ApplyFailed(`interface ${x.name || x.port}: cannot listen on ${this.ctx.listenHost}:${hostPort}: ${reason(e)}`);
        }
      }
      wanted.set(x.port, this.balancers.get(x.port)!.port);
    }
    await this.closeBalancers(new Set(wanted.keys()));
    return wanted;
  }

  private async closeBalancers(keep: Set<number>): Promise<void> {
    for (const [port, b] of this.balancers) {
      if (keep.has(port)) continue;
      await b.close();
      this.balancers.delete(port);
    }
  }

  /** Only ready replicas that are not draining take new connections. */
  private route(): void {
    const serving = [...this.instances.values()].filter((i) => i.ready && i.drainingSince === null && i.ip);
    for (const [port, b] of this.balancers) b.setBackends(serving.map((i) => ({ id: i.instanceId, host: i.ip!, port })));
  }

  private sendReport(): void {
    const report: ReportedInstance[] = [...this.instances.values()]
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId))
      .map((i) => ({
        instanceId: i.instanceId,
        rolloutId: i.rolloutId,
        ready: i.ready && i.drainingSince === null,
        state: i.running ? "running" : i.restarting || i.exitCode !== 0 ? "failed" : "pending",
        restarts: i.dockerRestarts + i.ownRestarts,
        ...(i.message ? { message: i.message } : {}),
        node: this.ctx.node,
        ...(i.startedAt && !i.startedAt.startsWith("0001") ? { startedAt: i.startedAt } : {}),
      }));
    const text = JSON.stringify(report);
    this.report = report;
    if (text === this.lastReport) return;
    this.lastReport = text;
    this.ctx.reporter.instances(this.ref, report);
  }
}
