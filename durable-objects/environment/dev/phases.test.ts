import { describe, expect, it } from "vitest";
import { EnvironmentPhase as P } from "../../../proto/gen/gitpod/v1/environment_pb";
import { archiveTime, onReport, onUser, type PhaseState, phaseByName, phaseName } from "./phases";

const s = (phase: P, desired: P, machine = true): PhaseState => ({ phase, desired, machine });

describe("user requests", () => {
  it("starts a stopped environment, and creates it again when no machine ever existed", () => {
    expect(onUser("start", s(P.STOPPED, P.STOPPED))).toEqual({ ok: true, phase: P.STARTING, desired: P.RUNNING });
    expect(onUser("start", s(P.STOPPED, P.STOPPED, false))).toEqual({ ok: true, phase: P.CREATING, desired: P.RUNNING });
    // A machine that failed and stopped by itself (desired still running) starts again too.
    expect(onUser("start", s(P.STOPPED, P.RUNNING))).toEqual({ ok: true, phase: P.STARTING, desired: P.RUNNING });
  });

  it("treats Start of a running or starting environment and Stop of a stopped one as done", () => {
    for (const phase of [P.CREATING, P.STARTING, P.RUNNING, P.UPDATING]) {
      expect(onUser("start", s(phase, P.RUNNING))).toEqual({ ok: true, phase, desired: P.RUNNING });
    }
    expect(onUser("stop", s(P.STOPPED, P.STOPPED))).toEqual({ ok: true, phase: P.STOPPED, desired: P.STOPPED });
    expect(onUser("stop", s(P.STOPPING, P.STOPPED))).toEqual({ ok: true, phase: P.STOPPING, desired: P.STOPPED });
  });

  it("refuses to start an environment that is still stopping", () => {
    expect(onUser("start", s(P.STOPPING, P.STOPPED))).toMatchObject({ ok: false, reason: expect.stringMatching(/stopping/) });
  });

  it("stops through STOPPING when a machine exists, and at once when none does", () => {
    expect(onUser("stop", s(P.RUNNING, P.RUNNING))).toEqual({ ok: true, phase: P.STOPPING, desired: P.STOPPED });
    expect(onUser("stop", s(P.CREATING, P.RUNNING, false))).toEqual({ ok: true, phase: P.STOPPED, desired: P.STOPPED });
  });

  it("deletes: a running machine stops first, a stopped one is deleted, none at all is gone at once", () => {
    expect(onUser("delete", s(P.RUNNING, P.RUNNING))).toEqual({ ok: true, phase: P.STOPPING, desired: P.DELETED });
    expect(onUser("delete", s(P.STOPPED, P.STOPPED))).toEqual({ ok: true, phase: P.DELETING, desired: P.DELETED });
    expect(onUser("delete", s(P.STARTING, P.RUNNING, false))).toEqual({ ok: true, phase: P.DELETED, desired: P.DELETED });
    expect(onUser("delete", s(P.DELETING, P.DELETED))).toEqual({ ok: true, phase: P.DELETING, desired: P.DELETED });
  });

  it("refuses everything but Delete once the environment is being deleted", () => {
    for (const op of ["start", "stop", "change"] as const) {
      expect(onUser(op, s(P.DELETING, P.DELETED))).toMatchObject({ ok: false, reason: "the environment is being deleted" });
      expect(onUser(op, s(P.STOPPING, P.DELETED))).toMatchObject({ ok: false });
    }
  });
});

describe("runner reports", () => {
  it("accepts the machine's way up and down", () => {
    expect(onReport(s(P.CREATING, P.RUNNING, false), P.STARTING)).toMatchObject({ ok: true, phase: P.STARTING });
    expect(onReport(s(P.STARTING, P.RUNNING), P.RUNNING)).toMatchObject({ ok: true, phase: P.RUNNING });
    expect(onReport(s(P.RUNNING, P.RUNNING), P.UPDATING)).toMatchObject({ ok: true, phase: P.UPDATING });
    expect(onReport(s(P.STOPPING, P.STOPPED), P.STOPPED)).toMatchObject({ ok: true, phase: P.STOPPED });
    // A machine that fails while it should run stops by itself.
    expect(onReport(s(P.RUNNING, P.RUNNING), P.STOPPED)).toMatchObject({ ok: true, phase: P.STOPPED, desired: P.RUNNING });
  });

  it("refuses what no machine can do", () => {
    expect(onReport(s(P.DELETED, P.DELETED), P.RUNNING)).toMatchObject({ ok: false });
    expect(onReport(s(P.DELETING, P.DELETED), P.RUNNING)).toMatchObject({ ok: false, reason: expect.stringMatching(/deleting/) });
    expect(onReport(s(P.RUNNING, P.RUNNING), P.DELETED)).toMatchObject({ ok: false, reason: expect.stringMatching(/only reported after/) });
    expect(onReport(s(P.RUNNING, P.RUNNING), P.CREATING)).toMatchObject({ ok: false, reason: expect.stringMatching(/first phase/) });
    expect(onReport(s(P.RUNNING, P.RUNNING), P.UNSPECIFIED)).toMatchObject({ ok: false });
  });

  it("accepts deleting and deleted after a Delete", () => {
    expect(onReport(s(P.STOPPING, P.DELETED), P.DELETING)).toMatchObject({ ok: true, phase: P.DELETING });
    expect(onReport(s(P.DELETING, P.DELETED), P.DELETED)).toMatchObject({ ok: true, phase: P.DELETED });
  });
});

describe("archiving", () => {
  const day = 24 * 60 * 60 * 1000;

  it("archives a stopped environment some time after it stopped or was last unarchived", () => {
    expect(archiveTime(P.STOPPED, 1000, null, 7 * day)).toBe(1000 + 7 * day);
    expect(archiveTime(P.STOPPED, 1000, 5000, 7 * day)).toBe(5000 + 7 * day);
  });

  it("never archives an environment that is not stopped", () => {
    expect(archiveTime(P.RUNNING, null, null, day)).toBeNull();
    expect(archiveTime(P.STOPPING, 1000, null, day)).toBeNull();
  });
});

describe("phase names", () => {
  it("maps the runner protocol's names to the enum and back", () => {
    expect(phaseByName("running")).toBe(P.RUNNING);
    expect(phaseByName("RUNNING")).toBeUndefined();
    expect(phaseByName("unspecified")).toBeUndefined();
    expect(phaseName(P.DELETING)).toBe("deleting");
  });
});
