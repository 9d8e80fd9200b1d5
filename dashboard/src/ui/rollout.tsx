/** How rollout and instance states read on screen: words first, a tone to colour them. */
import { type Status as RolloutStatus, Result, State, StepState } from "../../../proto/gen/api/v1/capsule/rollout/status_pb";
import { State as InstanceState } from "../../../proto/gen/api/v1/capsule/instance_pb";
import { Status, type Tone } from "./kit";

const words = (name: string) => name.charAt(0) + name.slice(1).toLowerCase().replaceAll("_", " ");

/** The badge of a rollout status, e.g. "Running", "Stopped · failed". */
export function RolloutBadge({ status }: { status: RolloutStatus | undefined }) {
  if (!status) return <Status tone="neutral">No rollout</Status>;
  let tone: Tone = "progress";
  let label = words(State[status.state] ?? "UNSPECIFIED");
  if (status.state === State.RUNNING) tone = status.result === Result.UNSPECIFIED ? "ok" : "warn";
  if (status.state === State.STOPPED) {
    tone = status.result === Result.FAILED || status.result === Result.ABORTED ? "bad" : "neutral";
    if (status.result !== Result.UNSPECIFIED) label += ` · ${words(Result[status.result] ?? "")}`;
  }
  if (status.state === State.RUNNING && rolloutFailing(status)) tone = "bad";
  return <Status tone={tone}>{label}</Status>;
}

/** Whether any step of the rollout reports FAILED. */
export function rolloutFailing(status: RolloutStatus): boolean {
  return stepsOf(status).some((s) => s.state === StepState.FAILED);
}

export interface StepView {
  stage: string;
  name: string;
  message: string;
  state: StepState;
}

/** Every step of every stage, in stage order, read from each step's common `info`. */
export function stepsOf(status: RolloutStatus | undefined): StepView[] {
  const stages = status?.stages;
  if (!stages) return [];
  const out: StepView[] = [];
  const add = (stage: string, steps: { step: { value?: { info?: { name: string; message: string; state: StepState } } } }[]) => {
    for (const s of steps) {
      const info = s.step.value?.info;
      if (info) out.push({ stage, name: info.name, message: info.message, state: info.state });
    }
  };
  add("Configure", stages.configure?.steps ?? []);
  add("Resource creation", stages.resourceCreation?.steps ?? []);
  add("Running", stages.running?.steps ?? []);
  return out;
}

const stepTone: Record<StepState, Tone> = {
  [StepState.UNSPECIFIED]: "neutral",
  [StepState.ONGOING]: "progress",
  [StepState.FAILED]: "bad",
  [StepState.DONE]: "ok",
};

/** The badge of one step. */
export function StepBadge({ state }: { state: StepState }) {
  return <Status tone={stepTone[state]}>{words(StepState[state] ?? "UNSPECIFIED")}</Status>;
}

const instanceTone: Record<InstanceState, Tone> = {
  [InstanceState.UNSPECIFIED]: "neutral",
  [InstanceState.PENDING]: "progress",
  [InstanceState.RUNNING]: "ok",
  [InstanceState.SUCCEEDED]: "neutral",
  [InstanceState.FAILED]: "bad",
};

/** The badge of an instance state. */
export function InstanceBadge({ state }: { state: InstanceState }) {
  return <Status tone={instanceTone[state]}>{words(InstanceState[state] ?? "UNSPECIFIED")}</Status>;
}
