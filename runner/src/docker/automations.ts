/**
 * Automations (gitpod.v1.EnvironmentAutomationService) in a developer environment's machine,
 * as Gitpod runs them: a service's `start` command is a long-lived process, `ready` is run
 * about once a second until it exits 0, and stopping runs `stop` and then ends `start`
 * (without `stop`: SIGTERM, then SIGKILL after a grace period). A task step is a process that
 * succeeds on exit 0; stopping it is SIGTERM, then SIGKILL after 10 s. Every process's output
 * is kept for its log URL (logs-server.ts). Commands run through `docker exec` in the machine
 * (machine-process.ts), in its content directory. What this runner cannot do is reported as
 * a failure, never pretended: `runsOn.docker` (a separate container per automation) and
 * environment variables taken from secrets.
 */
import { createHash } from "node:crypto";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { EnvironmentVariableItemSchema, RunsOnSchema } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { RunnerMessage, ServerMessage, ServiceRunPhase, StepRunPhase } from "../../../proto/frames/runner";
import type { Machine } from "./dev-environments";
import { MachineProcess, runIn, shell } from "./machine-process";
import type { ProcessOutput } from "./output";

type ServiceDesired = Extract<ServerMessage, { type: "service-desired" }>;
type StepRun = Extract<ServerMessage, { type: "task-step-run" }>;

export interface AutomationDeps {
  send: (msg: RunnerMessage) => void;
  /** The running machine, once there is one (null if none comes in time). */
  machine: (timeoutMs: number) => Promise<Machine | null>;
  /** Publishes a process's output and answers its log URL. */
  publishLog: (path: string, output: ProcessOutput) => string;
  /** How long a service without a `stop` command gets between SIGTERM and SIGKILL (Gitpod: 2 minutes). */
  serviceGraceMs?: number;
}

/** Between `ready` runs. */
const READY_INTERVAL_MS = 1000;
/** A task step's grace between SIGTERM and SIGKILL. */
const STEP_GRACE_MS = 10_000;
/** How long a start waits for the machine to be running. */
const MACHINE_WAIT_MS = 5 * 60_000;

interface ServiceRun {
  session: string;
  process: MachineProcess | null;
  /** Set while the runner stops it: its end is then `stopped`, not a failure. */
  stopping: boolean;
  /** The phase last reported for this session. */
  phase: ServiceRunPhase | null;
  logUrl?: string;
}

interface StepRunState {
  executionId: string;
  process: MachineProcess | null;
  stopping: boolean;
  /** The step's end, once reported (resent when the step is asked for again). */
  final?: Extract<RunnerMessage, { type: "task-step-status" }>;
  logUrl?: string;
}

/** Ids and sessions come from the server; process keys hold only safe characters. */
const keyOf = (kind: string, ...parts: string[]) => `${kind}-${createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 24)}`;

export class Automations {
  private readonly services = new Map<string, ServiceRun>();
  private readonly steps = new Map<string, StepRunState>();
  /** Per service, the handling of its messages, one after another. */
  private readonly queues = new Map<string, Promise<void>>();
  /** The last `service-desired` of each service: its commands, for stopping it. */
  private readonly lastDesired = new Map<string, ServiceDesired>();

  constructor(private readonly deps: AutomationDeps) {}

  private enqueue(id: string, work: () => Promise<void>): void {
    const next = (this.queues.get(id) ?? Promise.resolve()).then(work).catch((err: unknown) => {
      console.error(`automation ${id}: ${err instanceof Error ? err.message : String(err)}`);
    });
    this.queues.set(id, next);
    void next.then(() => this.queues.get(id) === next && this.queues.delete(id));
  }

  // ---- Services ---------------------------------------------------------------------------

  /** `service-desired`: level-triggered, so a repeat of what already holds changes nothing. */
  serviceDesired(msg: ServiceDesired): void {
    if (msg.desiredPhase === "deleted") this.lastDesired.delete(msg.serviceId);
    else this.lastDesired.set(msg.serviceId, msg);
    this.enqueue(msg.serviceId, () => this.applyService(msg));
  }

  /** `services-synced`: services not listed are stopped and forgotten. */
  servicesSynced(serviceIds: string[]): void {
    const keep = new Set(serviceIds);
    for (const id of this.services.keys()) {
      if (!keep.has(id)) this.enqueue(id, () => this.stopService(id, undefined, true));
    }
  }

  private reportService(serviceId: string, run: ServiceRun, phase: ServiceRunPhase, failureMessage?: string): void {
    run.phase = phase;
    this.deps.send({
      type: "service-status",
      serviceId,
      session: run.session,
      phase,
      ...(failureMessage ? { failureMessage } : {}),
      ...(run.logUrl ? { logUrl: run.logUrl } : {}),
    });
  }

  private async applyService(msg: ServiceDesired): Promise<void> {
    const current = this.services.get(msg.serviceId);
    if (msg.desiredPhase !== "running") return this.stopService(msg.serviceId, msg, msg.desiredPhase === "deleted");
    if (current?.session === msg.session) {
      // Already this session: running, or ended (an exited service waits for a new session).
      if (current.phase) this.reportService(msg.serviceId, current, current.phase);
      return;
    }
    if (current?.process?.running) await this.stopService(msg.serviceId, msg, false);
    const run: ServiceRun = { session: msg.session, process: null, stopping: false, phase: null };
    this.services.set(msg.serviceId, run);
    const unsupported = unsupportedParts(msg.runsOn, msg.env);
    if (unsupported) return this.reportService(msg.serviceId, run, "failed", unsupported);
    const machine = await this.deps.machine(MACHINE_WAIT_MS);
    if (!machine) return this.reportService(msg.serviceId, run, "failed", "the environment's machine is not running, so the service cannot start");
    const key = keyOf("svc", msg.serviceId, msg.session);
    // A runner that restarted finds the session's process still running and keeps it, or learns how it ended.
    const adopted = await MachineProcess.adopt(machine.container, key);
    const ended = adopted ? null : await MachineProcess.endedBefore(machine.container, key);
    if (ended !== null) {
      return this.reportService(msg.serviceId, run, ended === 0 ? "stopped" : "failed", ended === 0 ? undefined : `the start command exited with code ${ended}`);
    }
    const process = adopted ?? MachineProcess.start(machine.container, key, msg.commands.start, { env: envOf(msg.env), workingDir: machine.workingDir });
    run.process = process;
    run.logUrl = this.deps.publishLog(`services/${msg.serviceId}/${encodeURIComponent(msg.session)}`, process.output);
    // An adopted process was reported running by the runner before: it is not starting again.
    if (!adopted) this.reportService(msg.serviceId, run, "starting");
    void process.exited.then((code) => {
      if (this.services.get(msg.serviceId) !== run) return;
      if (run.stopping) return;
      if (code === 0) this.reportService(msg.serviceId, run, "stopped");
      else this.reportService(msg.serviceId, run, "failed", code === null ? "the start command was killed" : `the start command exited with code ${code}`);
    });
    if (adopted || !msg.commands.ready) {
      if (process.running) this.reportService(msg.serviceId, run, "running");
      return;
    }
    void this.pollReady(msg.serviceId, run, machine, msg);
  }

  /** Runs `ready` about once a second until it exits 0: the service is running from then. */
  private async pollReady(serviceId: string, run: ServiceRun, machine: Machine, msg: ServiceDesired): Promise<void> {
    while (run.process?.running && !run.stopping && this.services.get(serviceId) === run) {
      const ready = await runIn(machine.container, shell(msg.commands.ready!), { env: envOf(msg.env), workingDir: machine.workingDir }).catch(() => null);
      if (ready?.exitCode === 0 && run.process.running && !run.stopping) return this.reportService(serviceId, run, "running");
      await new Promise((r) => setTimeout(r, READY_INTERVAL_MS));
    }
  }

  /** Stops the service's process (its `stop` command, then the signals) and reports how it ended. */
  private async stopService(serviceId: string, msg: ServiceDesired | undefined, forget: boolean): Promise<void> {
    const run = this.services.get(serviceId);
    if (forget) this.services.delete(serviceId);
    if (!run) {
      // Not known here (never started, or lost in a restart): nothing runs, which is what was asked.
      if (msg) this.deps.send({ type: "service-status", serviceId, session: msg.session, phase: "stopped" });
      return;
    }
    const process = run.process;
    if (!process?.running) {
      if (msg && run.phase !== "stopped" && run.phase !== "failed") this.reportService(serviceId, run, "stopped");
      return;
    }
    await this.stopRun(serviceId, run, msg, this.deps.serviceGraceMs ?? 120_000);
  }

  /** Runs the service's `stop` command, then ends `start` (signals after `graceMs` without one), and reports how it ended. */
  private async stopRun(serviceId: string, run: ServiceRun, msg: ServiceDesired | undefined, graceMs: number): Promise<void> {
    const process = run.process;
    if (!process?.running || run.stopping) return;
    run.stopping = true;
    this.reportService(serviceId, run, "stopping");
    let failure: string | undefined;
    const stop = msg?.commands.stop;
    if (stop) {
      const machine = await this.deps.machine(0);
      const result = machine ? await runIn(machine.container, shell(stop), { env: envOf(msg.env), workingDir: machine.workingDir }).catch(() => null) : null;
      if (result) process.output.write(result.output);
      if (result && result.exitCode !== 0) failure = `the stop command exited with code ${result.exitCode}`;
      await process.terminate(0);
    } else {
      await process.terminate(graceMs);
    }
    this.reportService(serviceId, run, failure ? "failed" : "stopped", failure);
  }

  /**
   * The machine is about to stop: services are stopped as asked (their `stop` commands, then
   * signals, within `graceMs`) and steps ended, so nothing dies mid-write when the container goes.
   */
  async stopAll(graceMs: number): Promise<void> {
    const services = [...this.services.entries()].filter(([, run]) => run.process?.running);
    const steps = [...this.steps.entries()].filter(([, step]) => step.process?.running);
    const work = Promise.all([
      ...services.map(([id, run]) => this.stopRun(id, run, this.lastDesired.get(id), graceMs)),
      ...steps.map(async ([id, step]) => {
        step.stopping = true;
        await step.process?.terminate(Math.min(graceMs, STEP_GRACE_MS));
        this.reportStep(id, step, "stopped");
      }),
    ]);
    await Promise.race([work, new Promise((r) => setTimeout(r, graceMs))]);
  }

  // ---- Task steps -------------------------------------------------------------------------

  /** `task-step-run`: a step already known here is the same step, kept going (or its end told again). */
  stepRun(msg: StepRun): void {
    const known = this.steps.get(msg.stepId);
    if (known) {
      if (known.final) this.deps.send(known.final);
      return;
    }
    const step: StepRunState = { executionId: msg.executionId, process: null, stopping: false };
    this.steps.set(msg.stepId, step);
    this.enqueue(msg.stepId, () => this.startStep(msg, step));
  }

  private reportStep(stepId: string, step: StepRunState, phase: StepRunPhase, failureMessage?: string): void {
    const report: Extract<RunnerMessage, { type: "task-step-status" }> = {
      type: "task-step-status",
      executionId: step.executionId,
      stepId,
      phase,
      ...(failureMessage ? { failureMessage } : {}),
      ...(step.logUrl ? { logUrl: step.logUrl } : {}),
    };
    if (phase !== "running") step.final = report;
    this.deps.send(report);
  }

  private async startStep(msg: StepRun, step: StepRunState): Promise<void> {
    const unsupported = unsupportedParts(msg.runsOn, msg.env);
    if (unsupported) return this.reportStep(msg.stepId, step, "failed", unsupported);
    const machine = await this.deps.machine(MACHINE_WAIT_MS);
    if (step.stopping) return this.reportStep(msg.stepId, step, "stopped");
    if (!machine) return this.reportStep(msg.stepId, step, "failed", "the environment's machine is not running, so the step cannot run");
    const key = keyOf("step", msg.stepId);
    const adopted = await MachineProcess.adopt(machine.container, key);
    const ended = adopted ? null : await MachineProcess.endedBefore(machine.container, key);
    if (ended !== null) return this.reportStep(msg.stepId, step, ended === 0 ? "succeeded" : "failed", ended === 0 ? undefined : `the command exited with code ${ended}`);
    const process = adopted ?? MachineProcess.start(machine.container, key, msg.command, { env: envOf(msg.env), workingDir: machine.workingDir });
    step.process = process;
    step.logUrl = this.deps.publishLog(`executions/${msg.executionId}/steps/${msg.stepId}`, process.output);
    this.reportStep(msg.stepId, step, "running");
    const code = await process.exited;
    if (step.stopping) return;
    if (code === 0) this.reportStep(msg.stepId, step, "succeeded");
    else this.reportStep(msg.stepId, step, "failed", code === null ? "the command was killed" : `the command exited with code ${code}`);
  }

  /** `task-step-stop`: answered with `stopped`, also for a step this runner does not know. */
  stepStop(msg: Extract<ServerMessage, { type: "task-step-stop" }>): void {
    const step = this.steps.get(msg.stepId) ?? { executionId: msg.executionId, process: null, stopping: false };
    this.steps.set(msg.stepId, step);
    if (step.final) return;
    step.stopping = true;
    void (async () => {
      await step.process?.terminate(STEP_GRACE_MS);
      this.reportStep(msg.stepId, step, "stopped");
    })();
  }
}

/** `NAME=value` entries of the protocol's EnvironmentVariableItem list. */
function envOf(env: unknown[] | undefined): string[] {
  return (env ?? []).flatMap((item) => {
    const v = fromJson(EnvironmentVariableItemSchema, item as JsonValue, { ignoreUnknownFields: true });
    return v.name && v.source.case === "value" ? [`${v.name}=${v.source.value}`] : [];
  });
}

/** Why an automation asks for something this runner does not do, or undefined. */
function unsupportedParts(runsOn: unknown, env: unknown[] | undefined): string | undefined {
  const target = runsOn ? fromJson(RunsOnSchema, runsOn as JsonValue, { ignoreUnknownFields: true }).target : undefined;
  if (target?.case === "docker") return "runsOn.docker is not supported by this runner: automations run in the environment's machine";
  const fromSecrets = (env ?? [])
    .map((item) => fromJson(EnvironmentVariableItemSchema, item as JsonValue, { ignoreUnknownFields: true }))
    .filter((v) => v.source.case === "valueFrom")
    .map((v) => v.name);
  if (fromSecrets.length) return `environment variables from secrets (${fromSecrets.join(", ")}) are not supported by this runner`;
  return undefined;
}
