/**
 * The phase machine of a developer environment (gitpod.v1.EnvironmentService), as pure
 * functions. The user moves the *desired* phase (Start → running, Stop → stopped, Delete →
 * deleted); the runner reports the *actual* phase of the machine. The server sets the actual
 * phase itself only where the runner cannot: when a request starts a transition (so a client
 * reading right after Start sees STARTING, never the STOPPED it asked to leave), and when no
 * machine exists yet, so there is nothing for a runner to stop or delete.
 */
import { EnvironmentPhase as P } from "../../../proto/gen/gitpod/v1/environment_pb";

export interface PhaseState {
  phase: P;
  desired: P;
  /** A runner has acknowledged a spec, so a machine may exist that must be stopped or deleted by it. */
  machine: boolean;
}

export type UserOperation = "start" | "stop" | "delete" | "change";

/** Where a request leaves the environment, or why it is refused (failed_precondition). */
export type Transition = { ok: true; phase: P; desired: P } | { ok: false; reason: string };

const name = (p: P) => P[p]!.toLowerCase();
const refuse = (reason: string): Transition => ({ ok: false, reason });

/** Phases in which the machine runs or is on its way there. */
const ACTIVE = new Set([P.CREATING, P.STARTING, P.RUNNING, P.UPDATING]);

/**
 * What a user's request does. `change` is any request that only edits the environment
 * (Update, MarkActive, Unarchive): allowed until the environment is being deleted.
 * Start of a running environment and Stop of a stopped one change nothing (Gitpod's own
 * Start/Stop of services behave so, and retries stay harmless).
 */
export function onUser(op: UserOperation, s: PhaseState): Transition {
  if (s.phase === P.DELETED || s.desired === P.DELETED) {
    return op === "delete" ? { ok: true, phase: s.phase, desired: s.desired } : refuse("the environment is being deleted");
  }
  switch (op) {
    case "change":
      return { ok: true, phase: s.phase, desired: s.desired };
    case "start":
      if (s.phase === P.STOPPING) return refuse("the environment is stopping: start it once it has stopped");
      if (s.phase === P.STOPPED) return { ok: true, phase: s.machine ? P.STARTING : P.CREATING, desired: P.RUNNING };
      return { ok: true, phase: s.phase, desired: P.RUNNING };
    case "stop":
      if (!ACTIVE.has(s.phase)) return { ok: true, phase: s.phase, desired: P.STOPPED };
      return { ok: true, phase: s.machine ? P.STOPPING : P.STOPPED, desired: P.STOPPED };
    case "delete":
      // DELETING implies stopped: a machine that may still run is stopped first.
      if (!s.machine) return { ok: true, phase: P.DELETED, desired: P.DELETED };
      return { ok: true, phase: ACTIVE.has(s.phase) || s.phase === P.STOPPING ? P.STOPPING : P.DELETING, desired: P.DELETED };
  }
}

/**
 * Whether the runner may report `reported` now. The runner's word is the truth about the
 * machine, so most reports are accepted; refused are the ones no machine can make: leaving
 * DELETED, anything but deleting or deleted once deleting, being deleted without a Delete,
 * and CREATING after the machine existed.
 */
export function onReport(s: PhaseState, reported: P): Transition {
  const to = { ok: true as const, phase: reported, desired: s.desired };
  if (reported === P.UNSPECIFIED) return refuse("the phase is required");
  if (s.phase === P.DELETED) return refuse("the environment is deleted");
  if (s.phase === P.DELETING && reported !== P.DELETING && reported !== P.DELETED) {
    return refuse(`the environment is deleting: report deleting or deleted, not ${name(reported)}`);
  }
  if ((reported === P.DELETING || reported === P.DELETED) && s.desired !== P.DELETED) {
    return refuse(`${name(reported)} is only reported after the environment was deleted; its desired phase is ${name(s.desired)}`);
  }
  if (reported === P.CREATING && s.phase !== P.CREATING) return refuse(`creating is the first phase only; the environment is ${name(s.phase)}`);
  return to;
}

/**
 * When a stopped environment counts as archived: `afterMs` after it stopped or was last
 * unarchived, whichever is later. Null while it is not stopped.
 */
export function archiveTime(phase: P, stoppedAt: number | null, unarchivedAt: number | null, afterMs: number): number | null {
  if (phase !== P.STOPPED || stoppedAt === null) return null;
  return Math.max(stoppedAt, unarchivedAt ?? 0) + afterMs;
}

/** Runner protocol names of the phases (`environment-status`), and back. */
export const PHASE_NAMES = ["creating", "starting", "running", "updating", "stopping", "stopped", "deleting", "deleted"] as const;
export type PhaseName = (typeof PHASE_NAMES)[number];

export const phaseByName = (n: string): P | undefined =>
  (PHASE_NAMES as readonly string[]).includes(n) ? P[n.toUpperCase() as keyof typeof P] : undefined;

export const phaseName = (p: P): PhaseName => name(p) as PhaseName;
