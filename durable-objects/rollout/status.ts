/**
 * The rollout state machine of the specification, as pure changes to an api.v1.capsule.rollout.Status:
 * PREPARING → CONFIGURE → RESOURCE_CREATION → RUNNING, and STOPPED when it ends. Each function
 * changes the status in place and returns the message of the event it makes, if any; the
 * RolloutDO stores the result and logs the events.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { RolloutConfig } from "../../proto/gen/api/v1/capsule/rollout_pb";
import {
  ConfigureResult,
  type ConfigureStep,
  ConfigureStageSchema,
  ConfigureStepSchema,
  type InstancesStep,
  ResourceCreationStageSchema,
  ResourceCreationStepSchema,
  Result,
  RunningStageSchema,
  StageState,
  State,
  type Status,
  StatusSchema,
  type StepInfo,
  StepInfoSchema,
  StepState,
} from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import type { AppliedResource } from "../../proto/frames/runner";

/** Instances as counted against a rollout (the running stage's "instances" step). */
export interface InstanceCounts {
  /** Instances running this rollout's configuration. */
  updated: number;
  /** Of those, the ready ones. */
  ready: number;
  /** Of those, the ones crashing or otherwise not becoming ready. */
  stuck: number;
  /** Instances still running another rollout. */
  wrongVersion: number;
}

const ts = timestampFromMs;

function step(name: string, now: number, state: StepState, message = ""): StepInfo {
  return create(StepInfoSchema, { name, message, state, startedAt: ts(now), updatedAt: ts(now) });
}

function touch(info: StepInfo | undefined, now: number, state: StepState, message?: string): void {
  if (!info) return;
  info.state = state;
  info.updatedAt = ts(now);
  if (message !== undefined) info.message = message;
}

function stageInfo(name: string, now: number) {
  return { name, state: StageState.DEPLOYING, startedAt: ts(now), updatedAt: ts(now) };
}

/** A new rollout, preparing. */
export function preparing(rolloutId: bigint, now: number): Status {
  return create(StatusSchema, { rolloutId, state: State.PREPARING, updatedAt: ts(now), stages: {} });
}

/** Whether the rollout has ended (STOPPED, with or without a result). */
export const isStopped = (s: Status) => s.state === State.STOPPED;

/** Whether the rollout reached health: RUNNING with every instance of it ready. */
export const isSettled = (s: Status) => s.state === State.RUNNING && instancesStep(s)?.info?.state === StepState.DONE;

/** A rollout still on its way: a new deploy must wait for it or abort it. */
export const inProgress = (s: Status) => !isStopped(s) && !isSettled(s);

function instancesStep(s: Status): InstancesStep | undefined {
  for (const st of s.stages?.running?.steps ?? []) if (st.step.case === "instances") return st.step.value;
  return undefined;
}

function runnerStep(s: Status): StepInfo | undefined {
  for (const st of s.stages?.resourceCreation?.steps ?? []) {
    if (st.step.case === "generic" && st.step.value.info?.name === "runner") return st.step.value.info;
  }
  return undefined;
}

function changeOf(before: boolean, after: boolean, same: boolean): ConfigureResult {
  if (!before) return after ? ConfigureResult.CREATED : ConfigureResult.NO_CHANGE;
  if (!after) return ConfigureResult.DELETED;
  return same ? ConfigureResult.NO_CHANGE : ConfigureResult.UPDATED;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The configure stage: what the rollout changes about the capsule, its environment variables
 * and each config file, against the configuration it follows. It is all edgeplane's own
 * state, so the stage completes at once.
 */
export function configure(s: Status, now: number, previous: RolloutConfig | undefined, next: RolloutConfig): string {
  s.state = State.CONFIGURE;
  s.updatedAt = ts(now);
  const done = (name: string) => step(name, now, StepState.DONE);
  const steps: ConfigureStep[] = [
    create(ConfigureStepSchema, {
      step: { case: "configureCapsule", value: { info: done("configure_capsule"), state: previous ? ConfigureResult.UPDATED : ConfigureResult.CREATED } },
    }),
  ];
  const envBefore = previous?.containerSettings?.environmentVariables ?? {};
  const envAfter = next.containerSettings?.environmentVariables ?? {};
  const hadEnv = Object.keys(envBefore).length > 0;
  const hasEnv = Object.keys(envAfter).length > 0;
  if (hadEnv || hasEnv) {
    steps.push(
      create(ConfigureStepSchema, {
        step: { case: "configureEnv", value: { info: done("configure_env"), state: changeOf(hadEnv, hasEnv, sameJson(envBefore, envAfter)), isSecret: false } },
      }),
    );
  }
  const files = new Map((previous?.configFiles ?? []).map((f) => [f.path, f]));
  for (const f of next.configFiles) {
    const old = files.get(f.path);
    files.delete(f.path);
    const same = !!old && old.isSecret === f.isSecret && sameJson([...old.content], [...f.content]);
    steps.push(
      create(ConfigureStepSchema, {
        step: { case: "configureFile", value: { info: done("configure_file"), state: changeOf(!!old, true, same), path: f.path, isSecret: f.isSecret } },
      }),
    );
  }
  for (const f of files.values()) {
    steps.push(
      create(ConfigureStepSchema, {
        step: { case: "configureFile", value: { info: done("configure_file"), state: ConfigureResult.DELETED, path: f.path, isSecret: f.isSecret } },
      }),
    );
  }
  s.stages!.configure = create(ConfigureStageSchema, { info: { ...stageInfo("configure", now), state: StageState.STOPPED }, steps });
  return `configured: ${steps.length} step(s)`;
}

/** Resource creation starts: the runner is asked to create the rollout's resources. */
export function awaitResources(s: Status, now: number, runnerMessage: string): string {
  s.state = State.RESOURCE_CREATION;
  s.updatedAt = ts(now);
  s.stages!.resourceCreation = create(ResourceCreationStageSchema, {
    info: stageInfo("resource_creation", now),
    steps: [{ step: { case: "generic", value: { info: step("runner", now, StepState.ONGOING, runnerMessage) } } }],
  });
  return runnerMessage;
}

/**
 * What the runner is doing for a rollout still in progress, in the step it is waiting on:
 * resource creation's "runner" step, or the running stage's instances step.
 */
export function runnerNews(s: Status, now: number, message: string): string | undefined {
  if (!inProgress(s)) return undefined;
  const info = s.state === State.RESOURCE_CREATION ? runnerStep(s) : instancesStep(s)?.info;
  if (!info || info.message === message) return undefined;
  info.message = message;
  info.updatedAt = ts(now);
  s.updatedAt = ts(now);
  return message;
}

/** The runner created the resources: the rollout is RUNNING, waiting for its instances. */
export function resourcesCreated(s: Status, now: number, resources: AppliedResource[], replicas: number): string | undefined {
  if (s.state !== State.RESOURCE_CREATION) return undefined;
  const stage = s.stages!.resourceCreation!;
  touch(runnerStep(s), now, StepState.DONE, "resources created by the runner");
  for (const r of resources) {
    stage.steps.push(
      create(ResourceCreationStepSchema, {
        step: { case: "createResource", value: { info: step(`${r.kind}/${r.name}`, now, StepState.DONE), kind: r.kind, name: r.name } },
      }),
    );
  }
  stage.info!.state = StageState.STOPPED;
  stage.info!.updatedAt = ts(now);
  s.state = State.RUNNING;
  s.updatedAt = ts(now);
  s.stages!.running = create(RunningStageSchema, {
    info: stageInfo("running", now),
    steps: [{ step: { case: "instances", value: { info: step("instances", now, StepState.ONGOING, `0 of ${replicas} instance(s) ready`) } } }],
  });
  const names = resources.map((r) => `${r.kind}/${r.name}`).join(", ");
  return `resources created${names ? `: ${names}` : ""}`;
}

/** The runner could not create the resources: the rollout ends, FAILED. */
export function resourcesFailed(s: Status, now: number, message: string): string | undefined {
  if (s.state !== State.RESOURCE_CREATION) return undefined;
  touch(runnerStep(s), now, StepState.FAILED, message);
  end(s, now, Result.FAILED);
  return `resource creation failed: ${message}`;
}

/**
 * New instance counts from the runner. When every one of `replicas` instances runs this
 * rollout and is ready, the rollout is healthy: it stays RUNNING until something replaces it.
 */
export function countInstances(s: Status, now: number, c: InstanceCounts, replicas: number): string | undefined {
  const st = instancesStep(s);
  if (s.state !== State.RUNNING || !st) return undefined;
  st.numUpdated = c.updated;
  st.numReady = c.ready;
  st.numStuck = c.stuck;
  st.numWrongVersion = c.wrongVersion;
  const healthy = c.updated === replicas && c.ready === replicas && c.wrongVersion === 0;
  if (healthy && st.info?.state !== StepState.DONE) {
    touch(st.info, now, StepState.DONE, `${replicas} of ${replicas} instance(s) ready`);
    s.stages!.running!.info!.state = StageState.RUNNING;
    s.stages!.running!.info!.updatedAt = ts(now);
    s.updatedAt = ts(now);
    return `rollout is running: ${replicas} of ${replicas} instance(s) ready`;
  }
  if (healthy) return undefined;
  const parts = [`${c.ready} of ${replicas} instance(s) ready`];
  if (c.stuck) parts.push(`${c.stuck} stuck`);
  if (c.wrongVersion) parts.push(`${c.wrongVersion} running another rollout`);
  const message = parts.join(", ");
  // A stuck step keeps its FAILED state (and its "stuck" message) until the instances recover;
  // otherwise the counts replace whatever the step said before (a runner's news, say).
  if (st.info?.state === StepState.FAILED || st.info?.message === message) return undefined;
  touch(st.info, now, StepState.ONGOING, message);
  s.updatedAt = ts(now);
  return message;
}

/** The instances did not become ready in time: the instances step fails, the rollout stays to be fixed or replaced. */
export function markStuck(s: Status, now: number, replicas: number, after: string): string | undefined {
  const st = instancesStep(s);
  if (s.state !== State.RUNNING || !st || st.info?.state === StepState.DONE || st.info?.state === StepState.FAILED) return undefined;
  const message = `stuck: ${st.numReady} of ${replicas} instance(s) ready after ${after}`;
  touch(st.info, now, StepState.FAILED, message);
  s.updatedAt = ts(now);
  return message;
}

/** The rollout ends. Steps still ongoing fail: they will not finish. */
export function end(s: Status, now: number, result: Result): void {
  for (const stage of [s.stages?.configure, s.stages?.resourceCreation, s.stages?.running]) {
    if (!stage) continue;
    for (const st of stage.steps) {
      const info = (st.step.value as { info?: StepInfo } | undefined)?.info;
      if (info?.state === StepState.ONGOING) touch(info, now, StepState.FAILED);
    }
    if (stage.info) {
      stage.info.state = StageState.STOPPED;
      stage.info.updatedAt = ts(now);
    }
  }
  s.state = State.STOPPED;
  s.result = result;
  s.updatedAt = ts(now);
}
