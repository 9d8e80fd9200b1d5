/**
 * How Skaffold folds its events into State, as its v1 event handler does
 * (pkg/skaffold/event/event.go, `handleExec` and the reset helpers): the same status strings,
 * the same state changes and the same entry texts; and which Skaffold events a rollout of a
 * capsule makes (`rolloutEvents`). Pure functions over protobuf messages; the Skaffold session
 * of an environment (skaffold/session.ts) stores what they return.
 */
import { clone, create, type MessageInitShape } from "@bufbuild/protobuf";
import { StatusCode } from "../../../proto/gen/skaffold/enums/enums_pb";
import {
  type ActionableErr,
  type Event,
  EventSchema,
  type Intent,
  MetadataSchema,
  type State,
  StateSchema,
  StatusCheckStateSchema,
} from "../../../proto/gen/skaffold/v1/skaffold_pb";
import type { RolloutSummary } from "../../rollout/rollout";

/** The status strings Skaffold's code emits (not the spellings of its proto comments). */
export const Status = {
  NotStarted: "Not Started",
  InProgress: "In Progress",
  Complete: "Complete",
  Failed: "Failed",
  Info: "Information",
  Started: "Started",
  Succeeded: "Succeeded",
  Terminated: "Terminated",
  Canceled: "Canceled",
} as const;

/** The auto triggers of the three phases, as State carries them. */
export interface AutoTriggers {
  build: boolean;
  sync: boolean;
  deploy: boolean;
}

/**
 * The state of a fresh session: Skaffold's `emptyStateWithArtifacts` with no artifacts (an
 * environment has no skaffold.yaml; build events add artifacts as they come) and the metadata
 * Skaffold derives from an empty pipeline.
 */
export function initialState(
  auto: AutoTriggers,
  artifacts: Record<string, string> = {},
  metadata: MessageInitShape<typeof MetadataSchema> = { build: {}, deploy: {} },
): State {
  return create(StateSchema, {
    buildState: { artifacts, autoTrigger: auto.build, statusCode: StatusCode.OK },
    testState: { status: Status.NotStarted, statusCode: StatusCode.OK },
    deployState: { status: Status.NotStarted, autoTrigger: auto.deploy, statusCode: StatusCode.OK },
    statusCheckState: emptyStatusCheckState(),
    forwardedPorts: {},
    fileSyncState: { status: Status.NotStarted, autoTrigger: auto.sync },
    metadata,
  });
}

const emptyStatusCheckState = () => create(StatusCheckStateSchema, { status: Status.NotStarted, resources: {}, statusCode: StatusCode.OK });

/** The error code an event carries: its ActionableErr's, else the deprecated field's. */
const codeOf = (e: { actionableErr?: ActionableErr; errCode?: StatusCode }) => e.actionableErr?.errCode || e.errCode || StatusCode.OK;

/** Go's `%v` of a proto enum: its name, or the number when it has none. */
const codeName = (code: StatusCode) => StatusCode[code] ?? String(code);

/**
 * Why `event` cannot be folded, naming the field; undefined when it can. Skaffold logs an
 * empty event with an empty entry, and crashes on a failed dev loop without its error.
 */
export function problemOf(event: Event): { field: string; problem: string } | undefined {
  const e = event.eventType;
  if (e.case === undefined) {
    const kinds = EventSchema.oneofs[0]!.fields.map((f) => f.name).join(", ");
    return { field: "event", problem: `set exactly one of ${kinds}` };
  }
  if (e.case === "devLoopEvent" && e.value.status === Status.Failed && !e.value.err) {
    return { field: "devLoopEvent.err", problem: "is required when status is Failed: it carries the error code" };
  }
  return undefined;
}

/**
 * Folds one event into a copy of `state` and returns it with the log entry's text.
 *
 * Beyond `handleExec`, the fold also sets the status codes that Skaffold's emitters write
 * next to the event they emit (DeployComplete → DEPLOY_SUCCESS, DeployFailed, TestFailed,
 * BuildSequenceFailed, StatusCheckEventEnded → STATUSCHECK_SUCCESS or the failure's code):
 * here every event arrives from outside, so the event is the only place the code can come from.
 */
export function fold(previous: State, event: Event): { state: State; entry: string } {
  const state = clone(StateSchema, previous);
  const e = event.eventType;
  switch (e.case) {
    case "buildEvent": {
      const { artifact, status } = e.value;
      state.buildState!.artifacts[artifact] = status;
      if (status === Status.Failed) state.buildState!.statusCode = codeOf(e.value) || StatusCode.BUILD_UNKNOWN;
      const verb = { [Status.InProgress]: "started", [Status.Complete]: "completed", [Status.Failed]: "failed" }[status];
      return { state, entry: verb ? `Build ${verb} for artifact ${artifact}` : "" };
    }
    case "TestEvent": {
      const { status } = e.value;
      state.testState!.status = status;
      if (status === Status.Failed) state.testState!.statusCode = e.value.actionableErr?.errCode || StatusCode.TEST_UNKNOWN;
      const verb = { [Status.InProgress]: "started", [Status.Complete]: "completed", [Status.Failed]: "failed" }[status];
      return { state, entry: verb ? `Test ${verb}` : "" };
    }
    case "deployEvent": {
      // "Information" events overwrite the deploy status too, as in Skaffold.
      const { status } = e.value;
      state.deployState!.status = status;
      if (status === Status.Complete) state.deployState!.statusCode = StatusCode.DEPLOY_SUCCESS;
      if (status === Status.Failed) state.deployState!.statusCode = codeOf(e.value) || StatusCode.DEPLOY_UNKNOWN;
      const verb = { [Status.InProgress]: "started", [Status.Complete]: "completed", [Status.Failed]: "failed" }[status];
      return { state, entry: verb ? `Deploy ${verb}` : "" };
    }
    case "portEvent": {
      // Keyed by the local port: a re-forward on the same port replaces the earlier one.
      state.forwardedPorts[e.value.localPort] = e.value;
      return { state, entry: `Forwarding container ${e.value.containerName} to local port ${e.value.localPort}` };
    }
    case "statusCheckEvent": {
      const { status } = e.value;
      state.statusCheckState!.status = status;
      if (status === Status.Succeeded) state.statusCheckState!.statusCode = StatusCode.STATUSCHECK_SUCCESS;
      if (status === Status.Failed) state.statusCheckState!.statusCode = codeOf(e.value) || StatusCode.STATUSCHECK_UNKNOWN;
      const what = { [Status.Started]: "started", [Status.InProgress]: "in progress", [Status.Succeeded]: "succeeded", [Status.Failed]: "failed" }[status];
      return { state, entry: what ? `Status check ${what}` : "" };
    }
    case "resourceStatusCheckEvent": {
      const { resource, status } = e.value;
      state.statusCheckState!.resources[resource] = status;
      const entry =
        status === Status.InProgress
          ? `Resource ${resource} status updated to ${status}`
          : status === Status.Succeeded
            ? `Resource ${resource} status completed successfully`
            : status === Status.Failed
              ? `Resource ${resource} status failed with ${e.value.err}`
              : "";
      return { state, entry };
    }
    case "fileSyncEvent": {
      const { status, fileCount, image } = e.value;
      state.fileSyncState!.status = status;
      const verb = { [Status.InProgress]: "started", [Status.Succeeded]: "succeeded", [Status.Failed]: "failed" }[status];
      return { state, entry: verb ? `File sync ${verb} for ${fileCount} files for ${image}` : "" };
    }
    case "debuggingContainerEvent": {
      const d = e.value;
      const where = `pod/${d.podName}:${d.containerName} (${d.namespace})`;
      if (d.status === Status.Started) {
        state.debuggingContainers.push(d);
        return { state, entry: `Debuggable container started ${where}` };
      }
      if (d.status === Status.Terminated) {
        state.debuggingContainers = state.debuggingContainers.filter(
          (x) => x.namespace !== d.namespace || x.podName !== d.podName || x.containerName !== d.containerName,
        );
        return { state, entry: `Debuggable container terminated ${where}` };
      }
      return { state, entry: "" };
    }
    case "devLoopEvent": {
      const { status, err } = e.value;
      if (status === Status.InProgress) return { state, entry: "Update initiated" };
      if (status === Status.Succeeded) return { state, entry: "Update succeeded" };
      if (status === Status.Failed) return { state, entry: `Update failed with error code ${codeName(err?.errCode ?? StatusCode.OK)}` };
      return { state, entry: "" };
    }
    default:
      // Meta and termination events change no state and have no entry text.
      return { state, entry: "" };
  }
}

/**
 * Skaffold's `ResetStateOnBuild`: a fresh state that keeps only the artifact names (back to
 * "Not Started"), the metadata and the three auto triggers.
 */
export function resetOnBuild(s: State): State {
  const artifacts = Object.fromEntries(Object.keys(s.buildState?.artifacts ?? {}).map((a) => [a, Status.NotStarted]));
  const auto = { build: !!s.buildState?.autoTrigger, sync: !!s.fileSyncState?.autoTrigger, deploy: !!s.deployState?.autoTrigger };
  return initialState(auto, artifacts, s.metadata ? clone(MetadataSchema, s.metadata) : undefined);
}

/**
 * Skaffold's `ResetStateOnDeploy`: deploy back to "Not Started" and OK, a fresh status check,
 * no forwarded ports or debugging containers. File sync and test are left alone, as there.
 */
export function resetOnDeploy(s: State): State {
  const state = clone(StateSchema, s);
  state.deployState!.status = Status.NotStarted;
  state.deployState!.statusCode = StatusCode.OK;
  state.statusCheckState = emptyStatusCheckState();
  state.forwardedPorts = {};
  state.debuggingContainers = [];
  return state;
}

/**
 * What Skaffold's Execute does to State before it hands the intent to the dev loop: a devloop
 * intent resets everything (and the other flags are ignored), build resets everything, deploy
 * resets the deploy part, sync changes nothing.
 */
export function applyIntent(s: State, intent: Intent | undefined): State {
  if (intent?.devloop || intent?.build) s = resetOnBuild(s);
  if (!intent?.devloop && intent?.deploy) s = resetOnDeploy(s);
  return s;
}

export type Phase = keyof AutoTriggers;

/** The auto trigger of `phase` in `s`. */
export function autoTrigger(s: State, phase: Phase): boolean {
  return !!(phase === "build" ? s.buildState?.autoTrigger : phase === "sync" ? s.fileSyncState?.autoTrigger : s.deployState?.autoTrigger);
}

/** Sets the auto trigger of `phase`; nothing else changes. */
export function setAutoTrigger(s: State, phase: Phase, enabled: boolean): State {
  const state = clone(StateSchema, s);
  if (phase === "build") state.buildState!.autoTrigger = enabled;
  if (phase === "sync") state.fileSyncState!.autoTrigger = enabled;
  if (phase === "deploy") state.deployState!.autoTrigger = enabled;
  return state;
}

/**
 * What Skaffold's `executeAutoTrigger` does to State when a trigger is turned on, since the
 * phase then runs at once: build resets everything, deploy the deploy part, sync nothing.
 */
export function resetOnTrigger(s: State, phase: Phase): State {
  if (phase === "build") return resetOnBuild(s);
  if (phase === "deploy") return resetOnDeploy(s);
  return s;
}

type EventInit = MessageInitShape<typeof EventSchema>;

/** How far a rollout's Skaffold events have got. */
export type RolloutPhase = "deploying" | "checking" | "failed" | "healthy" | "ended";

/**
 * The status-check resource of a capsule. Skaffold names resources `ns:kind/name`; a capsule
 * is named within its project, so the project stands where the namespace would.
 */
export const capsuleResource = (projectId: string, capsuleId: string) => `${projectId}:deployment/${capsuleId}`;

/**
 * The Skaffold events of a rollout moving from `phase` to where `s` says it is, in the order a
 * Skaffold deploy emits them: Deploy In Progress while edgeplane prepares the rollout and the
 * runner creates its resources; Deploy Complete, Status check Started and the capsule's
 * resource In Progress once they exist; Succeeded when every instance is ready. A stuck
 * rollout fails its status check (deadline exceeded); one stopped on the way fails the
 * phase it was in. Progress messages while checking update the resource, as Skaffold's
 * polling does. Same phase, same message: no events (the phase is returned unchanged).
 */
export function rolloutEvents(phase: RolloutPhase | undefined, s: RolloutSummary): { events: EventInit[]; phase: RolloutPhase } {
  const resource = capsuleResource(s.projectId, s.capsuleId);
  const events: EventInit[] = [];
  const deploy = (status: string, code = StatusCode.OK) =>
    events.push({
      eventType: {
        case: "deployEvent",
        value: { status, ...(code !== StatusCode.OK && { err: s.message, errCode: code, actionableErr: { errCode: code, message: s.message } }) },
      },
    });
  const check = (status: string, code = StatusCode.OK) =>
    events.push({
      eventType: {
        case: "statusCheckEvent",
        value: { status, ...(code !== StatusCode.OK && { err: s.message, errCode: code, actionableErr: { errCode: code, message: s.message } }) },
      },
    });
  const res = (status: string, code: StatusCode, message: string) =>
    events.push({
      eventType: {
        case: "resourceStatusCheckEvent",
        value: {
          resource,
          status,
          message,
          statusCode: code,
          ...(status === Status.Failed && { err: message, actionableErr: { errCode: code, message } }),
        },
      },
    });

  if (phase === "ended") return { events, phase };
  if (s.stopped) {
    const aborted = s.result === "ABORTED";
    if (phase === "deploying") deploy(Status.Failed, aborted ? StatusCode.DEPLOY_CANCELLED : StatusCode.DEPLOY_UNKNOWN);
    if (phase === "checking") {
      const code = aborted ? StatusCode.STATUSCHECK_USER_CANCELLED : StatusCode.STATUSCHECK_UNKNOWN;
      res(Status.Failed, code, s.message);
      check(Status.Failed, code);
    }
    return { events, phase: "ended" };
  }
  if (s.state !== "RUNNING") {
    if (phase !== undefined) return { events, phase };
    deploy(Status.InProgress);
    return { events, phase: "deploying" };
  }
  if (phase === undefined) deploy(Status.InProgress);
  let next: RolloutPhase = phase ?? "deploying";
  if (next === "deploying") {
    deploy(Status.Complete);
    check(Status.Started);
    res(Status.InProgress, StatusCode.STATUSCHECK_DEPLOYMENT_ROLLOUT_PENDING, s.message);
    next = "checking";
  } else if (s.inProgress && s.message && !s.message.startsWith("stuck")) {
    res(Status.InProgress, StatusCode.STATUSCHECK_DEPLOYMENT_ROLLOUT_PENDING, s.message);
  }
  if (!s.inProgress && next !== "healthy") {
    res(Status.Succeeded, StatusCode.STATUSCHECK_SUCCESS, Status.Succeeded);
    check(Status.Succeeded);
    next = "healthy";
  } else if (s.inProgress && s.message.startsWith("stuck") && next === "checking") {
    res(Status.Failed, StatusCode.STATUSCHECK_DEADLINE_EXCEEDED, s.message);
    check(Status.Failed, StatusCode.STATUSCHECK_DEADLINE_EXCEEDED);
    next = "failed";
  }
  return { events, phase: next };
}
