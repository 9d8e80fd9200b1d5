import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { StatusCode } from "../../../proto/gen/skaffold/enums/enums_pb";
import { EventSchema, IntentSchema, type State } from "../../../proto/gen/skaffold/v1/skaffold_pb";
import type { RolloutSummary } from "../../rollout/rollout";
import {
  applyIntent,
  fold,
  initialState,
  problemOf,
  resetOnBuild,
  resetOnDeploy,
  resetOnTrigger,
  type RolloutPhase,
  rolloutEvents,
  setAutoTrigger,
  Status,
} from "./state";

type EventInit = MessageInitShape<typeof EventSchema>["eventType"];

const fresh = () => initialState({ build: true, sync: true, deploy: true });
const ev = (eventType: EventInit) => create(EventSchema, { eventType });

/** Folds the events in order; returns the last state and every entry text. */
function run(events: EventInit[], from: State = fresh()) {
  const entries: string[] = [];
  let state = from;
  for (const e of events) {
    const r = fold(state, ev(e));
    state = r.state;
    entries.push(r.entry);
  }
  return { state, entries };
}

describe("initial state", () => {
  it("is Skaffold's empty state: everything Not Started and OK, the auto triggers as given", () => {
    const s = initialState({ build: true, sync: false, deploy: true });
    expect(s.buildState).toMatchObject({ artifacts: {}, autoTrigger: true, statusCode: StatusCode.OK });
    expect(s.deployState).toMatchObject({ status: "Not Started", autoTrigger: true, statusCode: StatusCode.OK });
    expect(s.testState).toMatchObject({ status: "Not Started", statusCode: StatusCode.OK });
    expect(s.fileSyncState).toMatchObject({ status: "Not Started", autoTrigger: false });
    expect(s.statusCheckState).toMatchObject({ status: "Not Started", resources: {}, statusCode: StatusCode.OK });
    expect(s.forwardedPorts).toEqual({});
    expect(s.debuggingContainers).toEqual([]);
  });

  it("uses the status strings of Skaffold's code, not of its proto comments", () => {
    expect(Object.values(Status)).toEqual(["Not Started", "In Progress", "Complete", "Failed", "Information", "Started", "Succeeded", "Terminated", "Canceled"]);
  });
});

describe("fold", () => {
  it("does not change the state it is given", () => {
    const s = fresh();
    fold(s, ev({ case: "deployEvent", value: { status: "In Progress" } }));
    expect(s.deployState!.status).toBe("Not Started");
  });

  it("build events set each artifact's status, whatever it is", () => {
    const { state, entries } = run([
      { case: "buildEvent", value: { artifact: "web", status: "In Progress" } },
      { case: "buildEvent", value: { artifact: "api", status: "In Progress" } },
      { case: "buildEvent", value: { artifact: "web", status: "Complete" } },
      { case: "buildEvent", value: { artifact: "api", status: "Canceled" } },
      { case: "buildEvent", value: { artifact: "db", status: "Failed", actionableErr: { errCode: StatusCode.BUILD_USER_ERROR } } },
    ]);
    expect(state.buildState!.artifacts).toEqual({ web: "Complete", api: "Canceled", db: "Failed" });
    expect(entries).toEqual(["Build started for artifact web", "Build started for artifact api", "Build completed for artifact web", "", "Build failed for artifact db"]);
    // The build sequence failed with the artifact's code; success never sets BUILD_SUCCESS in v1.
    expect(state.buildState!.statusCode).toBe(StatusCode.BUILD_USER_ERROR);
    expect(run([{ case: "buildEvent", value: { artifact: "web", status: "Complete" } }]).state.buildState!.statusCode).toBe(StatusCode.OK);
    expect(run([{ case: "buildEvent", value: { artifact: "x", status: "Failed" } }]).state.buildState!.statusCode).toBe(StatusCode.BUILD_UNKNOWN);
  });

  it("test events set the test status; a failure sets its code", () => {
    const { state, entries } = run([
      { case: "TestEvent", value: { status: "In Progress" } },
      { case: "TestEvent", value: { status: "Failed", actionableErr: { errCode: StatusCode.TEST_USER_CONFIG_ERR } } },
    ]);
    expect(state.testState).toMatchObject({ status: "Failed", statusCode: StatusCode.TEST_USER_CONFIG_ERR });
    expect(entries).toEqual(["Test started", "Test failed"]);
    const ok = run([{ case: "TestEvent", value: { status: "Complete" } }]);
    expect(ok.state.testState).toMatchObject({ status: "Complete", statusCode: StatusCode.OK });
    expect(ok.entries).toEqual(["Test completed"]);
  });

  it("deploy events set the deploy status, Information ones too; Complete sets DEPLOY_SUCCESS", () => {
    const { state, entries } = run([
      { case: "deployEvent", value: { status: "In Progress" } },
      { case: "deployEvent", value: { status: "Complete" } },
    ]);
    expect(state.deployState).toMatchObject({ status: "Complete", statusCode: StatusCode.DEPLOY_SUCCESS });
    expect(entries).toEqual(["Deploy started", "Deploy completed"]);
    const info = run([{ case: "deployEvent", value: { status: "Information", err: "a warning" } }], state);
    expect(info.state.deployState!.status).toBe("Information");
    expect(info.entries).toEqual([""]);
    const failed = run([{ case: "deployEvent", value: { status: "Failed", errCode: StatusCode.DEPLOY_KPT_APPLY_ERR } }]);
    expect(failed.state.deployState).toMatchObject({ status: "Failed", statusCode: StatusCode.DEPLOY_KPT_APPLY_ERR });
    expect(failed.entries).toEqual(["Deploy failed"]);
  });

  it("port events are kept by local port; a re-forward on the same port replaces the earlier one", () => {
    const { state, entries } = run([
      { case: "portEvent", value: { localPort: 9000, podName: "web-1", containerName: "web", targetPort: { intVal: 80 } } },
      { case: "portEvent", value: { localPort: 9001, resourceType: "service", resourceName: "api" } },
      { case: "portEvent", value: { localPort: 9000, podName: "web-2", containerName: "web" } },
    ]);
    expect(Object.keys(state.forwardedPorts)).toEqual(["9000", "9001"]);
    expect(state.forwardedPorts[9000]!.podName).toBe("web-2");
    expect(entries).toEqual(["Forwarding container web to local port 9000", "Forwarding container  to local port 9001", "Forwarding container web to local port 9000"]);
  });

  it("status-check events set its status; Succeeded sets STATUSCHECK_SUCCESS, Failed the failure's code", () => {
    const { state, entries } = run([
      { case: "statusCheckEvent", value: { status: "Started" } },
      { case: "statusCheckEvent", value: { status: "In Progress", message: "1/2 ready" } },
      { case: "statusCheckEvent", value: { status: "Succeeded" } },
    ]);
    expect(state.statusCheckState).toMatchObject({ status: "Succeeded", statusCode: StatusCode.STATUSCHECK_SUCCESS });
    expect(entries).toEqual(["Status check started", "Status check in progress", "Status check succeeded"]);
    const failed = run([{ case: "statusCheckEvent", value: { status: "Failed", actionableErr: { errCode: StatusCode.STATUSCHECK_DEADLINE_EXCEEDED } } }]);
    expect(failed.state.statusCheckState).toMatchObject({ status: "Failed", statusCode: StatusCode.STATUSCHECK_DEADLINE_EXCEEDED });
    expect(failed.entries).toEqual(["Status check failed"]);
  });

  it("resource status-check events set the status of each resource", () => {
    const { state, entries } = run([
      { case: "resourceStatusCheckEvent", value: { resource: "deployment/web", status: "In Progress" } },
      { case: "resourceStatusCheckEvent", value: { resource: "dev:statefulset/db", status: "In Progress" } },
      { case: "resourceStatusCheckEvent", value: { resource: "deployment/web", status: "Succeeded", statusCode: StatusCode.STATUSCHECK_SUCCESS } },
      { case: "resourceStatusCheckEvent", value: { resource: "dev:statefulset/db", status: "Failed", err: "image pull failed" } },
    ]);
    expect(state.statusCheckState!.resources).toEqual({ "deployment/web": "Succeeded", "dev:statefulset/db": "Failed" });
    expect(entries).toEqual([
      "Resource deployment/web status updated to In Progress",
      "Resource dev:statefulset/db status updated to In Progress",
      "Resource deployment/web status completed successfully",
      "Resource dev:statefulset/db status failed with image pull failed",
    ]);
    // The overall status check is its own event.
    expect(state.statusCheckState!.status).toBe("Not Started");
  });

  it("file-sync events set the sync status", () => {
    const { state, entries } = run([
      { case: "fileSyncEvent", value: { fileCount: 3, image: "web", status: "In Progress" } },
      { case: "fileSyncEvent", value: { fileCount: 3, image: "web", status: "Succeeded" } },
    ]);
    expect(state.fileSyncState).toMatchObject({ status: "Succeeded", autoTrigger: true });
    expect(entries).toEqual(["File sync started for 3 files for web", "File sync succeeded for 3 files for web"]);
    expect(run([{ case: "fileSyncEvent", value: { fileCount: 1, image: "api", status: "Failed" } }]).entries).toEqual(["File sync failed for 1 files for api"]);
  });

  it("debugging containers are added when Started and removed by namespace, pod and container when Terminated", () => {
    const c = (podName: string, containerName: string, status: string) =>
      ({ case: "debuggingContainerEvent", value: { status, podName, containerName, namespace: "dev", runtime: "go", debugPorts: { dlv: 56268 } } }) as const;
    const { state, entries } = run([c("web-1", "web", "Started"), c("web-1", "sidecar", "Started"), c("web-2", "web", "Started"), c("web-1", "web", "Terminated")]);
    expect(state.debuggingContainers.map((d) => `${d.podName}:${d.containerName}`)).toEqual(["web-1:sidecar", "web-2:web"]);
    expect(state.debuggingContainers[0]!.debugPorts).toEqual({ dlv: 56268 });
    expect(entries.at(0)).toBe("Debuggable container started pod/web-1:web (dev)");
    expect(entries.at(-1)).toBe("Debuggable container terminated pod/web-1:web (dev)");
  });

  it("dev-loop, meta and termination events change no state", () => {
    const before = fresh();
    const { state, entries } = run(
      [
        { case: "devLoopEvent", value: { iteration: 0, status: "In Progress" } },
        { case: "devLoopEvent", value: { iteration: 0, status: "Succeeded" } },
        { case: "devLoopEvent", value: { iteration: 1, status: "Failed", err: { errCode: StatusCode.BUILD_USER_ERROR } } },
        { case: "metaEvent", value: { entry: "Starting Skaffold: {Version:v2.13.0}" } },
        { case: "terminationEvent", value: { status: "Failed" } },
      ],
      before,
    );
    expect(state).toEqual(before);
    expect(entries).toEqual(["Update initiated", "Update succeeded", "Update failed with error code BUILD_USER_ERROR", "", ""]);
  });
});

describe("what Skaffold could not fold", () => {
  it("refuses an event with no kind set and a failed dev loop without its error, naming the field", () => {
    expect(problemOf(ev({ case: undefined }))).toMatchObject({ field: "event", problem: expect.stringContaining("buildEvent") });
    expect(problemOf(ev({ case: "devLoopEvent", value: { status: "Failed" } }))).toMatchObject({ field: "devLoopEvent.err" });
    expect(problemOf(ev({ case: "devLoopEvent", value: { status: "Succeeded" } }))).toBeUndefined();
  });
});

describe("resets, intents and auto triggers", () => {
  const busy = () =>
    run([
      { case: "buildEvent", value: { artifact: "web", status: "Complete" } },
      { case: "TestEvent", value: { status: "Complete" } },
      { case: "deployEvent", value: { status: "Complete" } },
      { case: "statusCheckEvent", value: { status: "Succeeded" } },
      { case: "resourceStatusCheckEvent", value: { resource: "deployment/web", status: "Succeeded" } },
      { case: "fileSyncEvent", value: { status: "Succeeded" } },
      { case: "portEvent", value: { localPort: 9000 } },
      { case: "debuggingContainerEvent", value: { status: "Started", podName: "p" } },
    ]).state;

  it("resetOnBuild keeps only the artifact names, the metadata and the auto triggers", () => {
    const s = setAutoTrigger(busy(), "sync", false);
    const r = resetOnBuild(s);
    expect(r).toEqual({ ...initialState({ build: true, sync: false, deploy: true }, { web: "Not Started" }), metadata: s.metadata });
  });

  it("resetOnDeploy resets deploy, status check, ports and debugging containers, not sync or test", () => {
    const r = resetOnDeploy(busy());
    expect(r.deployState).toMatchObject({ status: "Not Started", statusCode: StatusCode.OK });
    expect(r.statusCheckState).toMatchObject({ status: "Not Started", resources: {}, statusCode: StatusCode.OK });
    expect(r.forwardedPorts).toEqual({});
    expect(r.debuggingContainers).toEqual([]);
    expect(r.fileSyncState!.status).toBe("Succeeded");
    expect(r.testState!.status).toBe("Complete");
    expect(r.buildState!.artifacts).toEqual({ web: "Complete" });
  });

  it("Execute: build and devloop reset everything, deploy the deploy part, sync nothing", () => {
    const intent = (i: MessageInitShape<typeof IntentSchema>) => create(IntentSchema, i);
    expect(applyIntent(busy(), intent({ build: true }))).toEqual(resetOnBuild(busy()));
    expect(applyIntent(busy(), intent({ devloop: true, deploy: true }))).toEqual(resetOnBuild(busy()));
    expect(applyIntent(busy(), intent({ deploy: true }))).toEqual(resetOnDeploy(busy()));
    expect(applyIntent(busy(), intent({ sync: true }))).toEqual(busy());
    expect(applyIntent(busy(), undefined)).toEqual(busy());
  });

  it("setting a trigger changes only the trigger; a trigger turned on resets its phase (build: everything, deploy: the deploy part, sync: nothing)", () => {
    const manual = setAutoTrigger(setAutoTrigger(setAutoTrigger(busy(), "build", false), "sync", false), "deploy", false);
    expect([manual.buildState!.autoTrigger, manual.fileSyncState!.autoTrigger, manual.deployState!.autoTrigger]).toEqual([false, false, false]);
    expect(manual.deployState!.status).toBe("Complete");
    expect(setAutoTrigger(manual, "build", true).buildState).toMatchObject({ autoTrigger: true, artifacts: { web: "Complete" } });
    const build = resetOnTrigger(setAutoTrigger(manual, "build", true), "build");
    expect(build.buildState).toMatchObject({ autoTrigger: true, artifacts: { web: "Not Started" } });
    expect(build.testState!.status).toBe("Not Started");
    const deploy = resetOnTrigger(setAutoTrigger(manual, "deploy", true), "deploy");
    expect(deploy.deployState).toMatchObject({ autoTrigger: true, status: "Not Started" });
    expect(deploy.buildState!.artifacts).toEqual({ web: "Complete" });
    const sync = resetOnTrigger(setAutoTrigger(manual, "sync", true), "sync");
    expect(sync.fileSyncState).toMatchObject({ autoTrigger: true, status: "Succeeded" });
  });
});

describe("rollouts of capsules as Skaffold events", () => {
  const summary = (state: string, more: Partial<RolloutSummary> = {}): RolloutSummary => ({
    projectId: "p",
    capsuleId: "web",
    rolloutId: 1,
    environmentId: "dev",
    state,
    result: "UNSPECIFIED",
    inProgress: true,
    stopped: false,
    message: "",
    ...more,
  });
  /** The rollout's moves from no phase; each event as `kind status [code]`. */
  function walk(...moves: RolloutSummary[]) {
    let phase: RolloutPhase | undefined;
    const out: string[] = [];
    for (const m of moves) {
      const r = rolloutEvents(phase, m);
      phase = r.phase;
      for (const e of r.events) {
        const v = e.eventType!.value as { status: string; errCode?: StatusCode; statusCode?: StatusCode; resource?: string };
        const code = v.errCode ?? (v.status === "Failed" ? v.statusCode : undefined);
        out.push([e.eventType!.case, v.resource, v.status, code && StatusCode[code]].filter(Boolean).join(" "));
      }
    }
    return { out, phase };
  }

  it("follow a deploy to a healthy capsule, once each", () => {
    const { out, phase } = walk(
      summary("PREPARING"),
      summary("RESOURCE_CREATION", { message: "waiting for a runner" }),
      summary("RESOURCE_CREATION", { message: "applying" }),
      summary("RUNNING", { message: "resources created" }),
      summary("RUNNING", { message: "1 of 2 instance(s) ready" }),
      summary("RUNNING", { message: "" }),
      summary("RUNNING", { inProgress: false, message: "rollout is running" }),
      summary("RUNNING", { inProgress: false }),
      summary("STOPPED", { inProgress: false, stopped: true, result: "REPLACED" }),
    );
    expect(out).toEqual([
      "deployEvent In Progress",
      "deployEvent Complete",
      "statusCheckEvent Started",
      "resourceStatusCheckEvent p:deployment/web In Progress",
      "resourceStatusCheckEvent p:deployment/web In Progress",
      "resourceStatusCheckEvent p:deployment/web Succeeded",
      "statusCheckEvent Succeeded",
    ]);
    expect(phase).toBe("ended");
  });

  it("fail the status check of stuck instances, and succeed if they recover", () => {
    expect(
      walk(summary("RUNNING", { message: "resources created" }), summary("RUNNING", { message: "stuck: 0 of 1 instance(s) ready after 10m" }), summary("RUNNING", { inProgress: false })).out,
    ).toEqual([
      "deployEvent In Progress",
      "deployEvent Complete",
      "statusCheckEvent Started",
      "resourceStatusCheckEvent p:deployment/web In Progress",
      "resourceStatusCheckEvent p:deployment/web Failed STATUSCHECK_DEADLINE_EXCEEDED",
      "statusCheckEvent Failed STATUSCHECK_DEADLINE_EXCEEDED",
      "resourceStatusCheckEvent p:deployment/web Succeeded",
      "statusCheckEvent Succeeded",
    ]);
  });

  it("fail the phase a rollout was in when it is aborted or fails", () => {
    const aborted = summary("STOPPED", { stopped: true, inProgress: false, result: "ABORTED", message: "aborted" });
    expect(walk(summary("RESOURCE_CREATION"), aborted).out).toEqual(["deployEvent In Progress", "deployEvent Failed DEPLOY_CANCELLED"]);
    expect(walk(summary("RESOURCE_CREATION"), { ...aborted, result: "FAILED" }).out).toEqual(["deployEvent In Progress", "deployEvent Failed DEPLOY_UNKNOWN"]);
    expect(walk(summary("RUNNING"), aborted).out.slice(-2)).toEqual([
      "resourceStatusCheckEvent p:deployment/web Failed STATUSCHECK_USER_CANCELLED",
      "statusCheckEvent Failed STATUSCHECK_USER_CANCELLED",
    ]);
    // One that ended before anything was logged, or after, logs nothing more.
    expect(walk(aborted, summary("RUNNING")).out).toEqual([]);
  });
});
