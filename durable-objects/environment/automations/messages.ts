/**
 * The runner's side of services and task steps (proto/frames/runner.ts): what it is told to
 * run or stop, and what it reports (phases, outputs), as the API has them.
 */
import { toJson } from "@bufbuild/protobuf";
import {
  EnvironmentVariableItemSchema,
  RunsOnSchema,
  type Service,
  ServicePhase,
  type Task,
  type TaskExecution,
  TaskExecutionPhase,
  type TaskExecutionSpec_Step,
} from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import type { ServerMessage, ServiceRunPhase, StepRunPhase } from "../../../proto/frames/runner";

/** A service's phase as the runner reports it. */
export const SERVICE_PHASES: Record<ServiceRunPhase, ServicePhase> = {
  starting: ServicePhase.STARTING,
  running: ServicePhase.RUNNING,
  stopping: ServicePhase.STOPPING,
  stopped: ServicePhase.STOPPED,
  failed: ServicePhase.FAILED,
};

/** A task step's phase as the runner reports it. */
export const STEP_PHASES: Record<StepRunPhase, TaskExecutionPhase> = {
  running: TaskExecutionPhase.RUNNING,
  succeeded: TaskExecutionPhase.SUCCEEDED,
  failed: TaskExecutionPhase.FAILED,
  stopped: TaskExecutionPhase.STOPPED,
};

const DESIRED: Partial<Record<ServicePhase, "running" | "stopped" | "deleted">> = {
  [ServicePhase.RUNNING]: "running",
  [ServicePhase.STOPPED]: "stopped",
  [ServicePhase.DELETED]: "deleted",
};

/** What the runner is told of a service: its desired phase and how to run it. */
export function serviceDesired(s: Service): ServerMessage {
  const { commands, runsOn, env } = s.spec!;
  return {
    type: "service-desired",
    serviceId: s.id,
    reference: s.metadata!.reference,
    desiredPhase: DESIRED[s.spec!.desiredPhase] ?? "stopped",
    session: s.spec!.session,
    commands: { start: commands?.start ?? "", ...(commands?.ready ? { ready: commands.ready } : {}), ...(commands?.stop ? { stop: commands.stop } : {}) },
    ...(runsOn ? { runsOn: toJson(RunsOnSchema, runsOn) } : {}),
    ...(env.length ? { env: env.map((e) => toJson(EnvironmentVariableItemSchema, e)) } : {}),
  };
}

/** What the runner is told to run for a task step. */
export function stepRun(x: TaskExecution, step: TaskExecutionSpec_Step): ServerMessage {
  const task = step.step.value as { id: string; spec?: Task["spec"] };
  const spec = task.spec;
  return {
    type: "task-step-run",
    executionId: x.id,
    stepId: step.id,
    taskId: task.id,
    label: step.label,
    command: spec?.command ?? "",
    ...(spec?.runsOn ? { runsOn: toJson(RunsOnSchema, spec.runsOn) } : {}),
    ...(spec?.env.length ? { env: spec.env.map((e) => toJson(EnvironmentVariableItemSchema, e)) } : {}),
  };
}

/** Tells the runner to stop a task step. */
export const stepStop = (x: TaskExecution, step: TaskExecutionSpec_Step): ServerMessage => ({ type: "task-step-stop", executionId: x.id, stepId: step.id });

/** Output maps: an empty value removes its key. */
export function mergeOutput(into: Record<string, string>, from: Record<string, string> | undefined): void {
  for (const [k, v] of Object.entries(from ?? {})) {
    if (v === "") delete into[k];
    else into[k] = String(v);
  }
}
