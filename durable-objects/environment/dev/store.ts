/**
 * The developer environment (gitpod.v1.Environment) an EnvironmentDO may hold, in its SQLite
 * storage: metadata and spec as the user set them, and a status composed from the actual
 * phase, the runner's last report and what only the server knows (versions, the runner's
 * acknowledgement, activity, why nothing moves). The phase rules are in
 * dev/phases.ts; the object applies them, talks to the runner and mirrors each
 * change into D1 (`dev_environments`) for ListEnvironments.
 */
import { clone, create, equals, fromBinary, fromJson, type JsonValue, toBinary, toJson, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Environment,
  type EnvironmentActivitySignal,
  EnvironmentActivitySignalSchema,
  type EnvironmentMetadata,
  EnvironmentMetadataSchema,
  EnvironmentPhase as P,
  EnvironmentSchema,
  type EnvironmentSpec,
  EnvironmentSpec_AutomationsFileSchema,
  EnvironmentSpec_ContentSchema,
  EnvironmentSpec_DevContainerSchema,
  EnvironmentSpec_SSHPublicKeySchema,
  EnvironmentSpec_TimeoutSchema,
  EnvironmentSpecSchema,
  type EnvironmentStatus,
  EnvironmentStatus_RunnerACKSchema,
  EnvironmentStatus_RunnerACK_StatusCode,
  EnvironmentStatusSchema,
  type UpdateEnvironmentRequest,
} from "../../../proto/gen/gitpod/v1/environment_pb";
import type { Env } from "../../../workers/env";
import { mirrorStatement } from "../../../workers/d1/dev-environments";
import { defaults } from "../../../workers/core/config";
import { archiveTime, type PhaseState, type Transition } from "./phases";
import type { RunnerMessage, ServerMessage } from "../../../proto/frames/runner";

/** Everything the object keeps about its developer environment. */
export interface DevEnvironmentState {
  metadata: EnvironmentMetadata;
  /** With `specVersion` and `desiredPhase`. */
  spec: EnvironmentSpec;
  /** The actual phase. */
  phase: P;
  statusVersion: bigint;
  /** The spec version the runner last reported on; null until a runner has (then no machine exists). */
  ackedVersion: bigint | null;
  /** The machine's parts of the status (urls, content, secrets, failures…), as the runner last reported them. */
  report: EnvironmentStatus;
  /** Why the environment is not moving (no runner, or waiting for it), or "". */
  waiting: string;
  activity?: EnvironmentActivitySignal;
  /** When it last became STOPPED (null while it is not), and when it was last unarchived. */
  stoppedAt: number | null;
  unarchivedAt: number | null;
}

/** What a commit changed, for the events it logs, and the state as stored. */
export interface Committed {
  state: DevEnvironmentState;
  /** Anything at all: when false nothing was written. */
  changed: boolean;
  /** The spec (it got the next specVersion), the status (the next statusVersion), the metadata. */
  specChanged: boolean;
  statusChanged: boolean;
  metadataChanged: boolean;
  /** Grows with every write: orders the object's writes to D1. */
  revision: number;
}

type Row = {
  metadata: ArrayBuffer;
  spec: ArrayBuffer;
  phase: number;
  status_version: number;
  acked_version: number | null;
  report: ArrayBuffer;
  waiting: string;
  activity: ArrayBuffer | null;
  stopped_at: number | null;
  unarchived_at: number | null;
  revision: number;
};

const bytes = (b: ArrayBuffer) => new Uint8Array(b);

export class DevEnvironmentStore {
  constructor(private readonly sql: SqlStorage) {}

  /** The environment, or null when the object holds none. */
  get(): DevEnvironmentState | null {
    const r = this.sql.exec<Row>("SELECT * FROM dev_environment").toArray()[0];
    if (!r) return null;
    return {
      metadata: fromBinary(EnvironmentMetadataSchema, bytes(r.metadata)),
      spec: fromBinary(EnvironmentSpecSchema, bytes(r.spec)),
      phase: r.phase,
      statusVersion: BigInt(r.status_version),
      ackedVersion: r.acked_version === null ? null : BigInt(r.acked_version),
      report: fromBinary(EnvironmentStatusSchema, bytes(r.report)),
      waiting: r.waiting,
      activity: r.activity ? fromBinary(EnvironmentActivitySignalSchema, bytes(r.activity)) : undefined,
      stoppedAt: r.stopped_at,
      unarchivedAt: r.unarchived_at,
    };
  }

  /**
   * Stores `next` in place of `prev` (null to create). A changed spec gets the next
   * specVersion and a changed status the next statusVersion, so the versions order every
   * change a client can see. `waiting` says why the committed state does not move; it is
   * asked after the versions are set, since it compares them. `touchSpec` counts the spec as
   * written even when it reads the same (a Start of a machine that stopped by itself asks
   * the runner for the same spec again, as a new version).
   */
  commit(prev: DevEnvironmentState | null, next: DevEnvironmentState, waiting: (s: DevEnvironmentState) => string, opts: { touchSpec?: boolean } = {}): Committed {
    const now = Date.now();
    const state: DevEnvironmentState = { ...next, spec: clone(EnvironmentSpecSchema, next.spec) };
    const specChanged = !prev || opts.touchSpec === true || !equals(EnvironmentSpecSchema, { ...prev.spec, specVersion: 0n }, { ...state.spec, specVersion: 0n });
    state.spec.specVersion = (prev?.spec.specVersion ?? 0n) + (specChanged ? 1n : 0n);
    if (state.phase !== P.STOPPED) state.stoppedAt = null;
    else if (prev?.phase !== P.STOPPED) state.stoppedAt = now;
    state.waiting = waiting(state);
    state.statusVersion = prev?.statusVersion ?? 0n;
    const statusChanged = !prev || !equals(EnvironmentStatusSchema, statusOf(prev), statusOf(state));
    if (statusChanged) state.statusVersion++;
    const metadataChanged = !prev || !equals(EnvironmentMetadataSchema, environmentOf("", prev, now).metadata!, environmentOf("", state, now).metadata!);
    const changed = specChanged || statusChanged || metadataChanged || prev?.stoppedAt !== state.stoppedAt || prev?.unarchivedAt !== state.unarchivedAt;
    const last = this.sql.exec<{ revision: number }>("SELECT revision FROM dev_environment").toArray()[0]?.revision ?? 0;
    const result = { state, changed, specChanged, statusChanged, metadataChanged, revision: last + (changed ? 1 : 0) };
    if (!changed) return result;
    this.sql.exec(
      `INSERT OR REPLACE INTO dev_environment (singleton, metadata, spec, phase, status_version, acked_version, report, waiting, activity, stopped_at, unarchived_at, revision)
       VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      toBinary(EnvironmentMetadataSchema, state.metadata),
      toBinary(EnvironmentSpecSchema, state.spec),
      state.phase,
      Number(state.statusVersion),
      state.ackedVersion === null ? null : Number(state.ackedVersion),
      toBinary(EnvironmentStatusSchema, state.report),
      state.waiting,
      state.activity ? toBinary(EnvironmentActivitySignalSchema, state.activity) : null,
      state.stoppedAt,
      state.unarchivedAt,
      result.revision,
    );
    return result;
  }
}

// ---- Building states ----------------------------------------------------------------------

/** A new environment from CreateEnvironment's metadata and spec: CREATING, to run. */
export function newDevEnvironment(metadata: EnvironmentMetadata, spec: EnvironmentSpec): DevEnvironmentState {
  const s: DevEnvironmentState = {
    metadata: clone(EnvironmentMetadataSchema, metadata),
    spec: clone(EnvironmentSpecSchema, spec),
    phase: P.CREATING,
    statusVersion: 0n,
    ackedVersion: null,
    report: create(EnvironmentStatusSchema),
    waiting: "",
    stoppedAt: null,
    unarchivedAt: null,
  };
  s.spec.desiredPhase = P.RUNNING;
  return s;
}

/** `s` moved where a transition leads: the actual phase, and the desired one in its spec. */
export function withPhase(s: DevEnvironmentState, t: Extract<Transition, { ok: true }>): DevEnvironmentState {
  const spec = clone(EnvironmentSpecSchema, s.spec);
  spec.desiredPhase = t.desired;
  return { ...s, spec, phase: t.phase };
}

/** Start: the time it was called, and a clean slate for the failures of the last attempt. */
export function started(s: DevEnvironmentState, now: number): DevEnvironmentState {
  const metadata = clone(EnvironmentMetadataSchema, s.metadata);
  metadata.lastStartedAt = timestampFromMs(now);
  const report = clone(EnvironmentStatusSchema, s.report);
  report.failureMessage = [];
  return { ...s, metadata, report };
}

/** MarkEnvironmentActive. */
export const withActivity = (s: DevEnvironmentState, source: string, at: number): DevEnvironmentState => ({
  ...s,
  activity: create(EnvironmentActivitySignalSchema, { source, timestamp: timestampFromMs(at) }),
});

/**
 * An `environment-status` report taken in: the machine's parts of the status, with the
 * fields only the server sets cleared, and the runner (`service_account/<id>`) recorded as
 * the environment's.
 */
export function reported(s: DevEnvironmentState, msg: Extract<RunnerMessage, { type: "environment-status" }>, phase: P, runnerSubject: string): DevEnvironmentState {
  const report = fromJson(EnvironmentStatusSchema, (msg.status ?? {}) as JsonValue, { ignoreUnknownFields: true });
  report.statusVersion = 0n;
  report.phase = P.UNSPECIFIED;
  report.runnerAck = undefined;
  report.activitySignal = undefined;
  if (Array.isArray(msg.failureMessage)) report.failureMessage = msg.failureMessage.map(String);
  if (Array.isArray(msg.warningMessage)) report.warningMessage = msg.warningMessage.map(String);
  report.failureMessage = report.failureMessage.filter(Boolean);
  const metadata = clone(EnvironmentMetadataSchema, s.metadata);
  metadata.runnerId = runnerSubject.slice(runnerSubject.indexOf("/") + 1);
  return { ...s, metadata, phase, report, ackedVersion: BigInt(msg.specVersion) };
}

/**
 * UpdateEnvironment applied to a copy of metadata and spec: every field present changes, the
 * rest stay. SSH keys are matched by id (an entry without a value removes its key); a
 * non-empty port list replaces the ports. The Worker has checked the request.
 */
export function applyUpdate(s: DevEnvironmentState, req: UpdateEnvironmentRequest): DevEnvironmentState {
  const metadata = clone(EnvironmentMetadataSchema, s.metadata);
  const spec = clone(EnvironmentSpecSchema, s.spec);
  if (req.metadata?.name !== undefined) metadata.name = req.metadata.name;
  const u = req.spec;
  if (u?.content) {
    spec.content ??= create(EnvironmentSpec_ContentSchema);
    const { session, initializer, gitUsername, gitEmail } = u.content;
    if (session !== undefined) spec.content.session = session;
    if (initializer !== undefined) spec.content.initializer = initializer;
    if (gitUsername !== undefined) spec.content.gitUsername = gitUsername;
    if (gitEmail !== undefined) spec.content.gitEmail = gitEmail;
  }
  for (const key of u?.sshPublicKeys ?? []) {
    spec.sshPublicKeys = spec.sshPublicKeys.filter((k) => k.id !== key.id);
    if (key.value !== undefined) spec.sshPublicKeys.push(create(EnvironmentSpec_SSHPublicKeySchema, { id: key.id, value: key.value }));
  }
  if (u?.devcontainer) {
    spec.devcontainer ??= create(EnvironmentSpec_DevContainerSchema);
    if (u.devcontainer.session !== undefined) spec.devcontainer.session = u.devcontainer.session;
    if (u.devcontainer.devcontainerFilePath !== undefined) spec.devcontainer.devcontainerFilePath = u.devcontainer.devcontainerFilePath;
  }
  if (u && u.ports.length > 0) spec.ports = u.ports;
  if (u?.timeout?.disconnected !== undefined) spec.timeout = create(EnvironmentSpec_TimeoutSchema, { disconnected: u.timeout.disconnected });
  if (u?.automationsFile) {
    spec.automationsFile ??= create(EnvironmentSpec_AutomationsFileSchema);
    if (u.automationsFile.session !== undefined) spec.automationsFile.session = u.automationsFile.session;
    if (u.automationsFile.automationsFilePath !== undefined) spec.automationsFile.automationsFilePath = u.automationsFile.automationsFilePath;
  }
  if (u?.kernelControlsConfig) spec.kernelControlsConfig = u.kernelControlsConfig;
  return { ...s, metadata, spec };
}

// ---- Reading states -----------------------------------------------------------------------

/** The phase machine's view of the environment. */
export const phaseState = (s: DevEnvironmentState): PhaseState => ({ phase: s.phase, desired: s.spec.desiredPhase, machine: s.ackedVersion !== null });

/** When the environment counts as archived (see archiveTime). */
export const archiveAt = (s: DevEnvironmentState) => archiveTime(s.phase, s.stoppedAt, s.unarchivedAt, defaults.gitpod.archiveAfterMs);

/**
 * The status a client reads. Empty failure and warning lists stay empty, which protobuf JSON
 * leaves out: Gitpod's SDK takes any `failureMessage` array, even `[]`, for a failure.
 */
export function statusOf(s: DevEnvironmentState): EnvironmentStatus {
  const status = clone(EnvironmentStatusSchema, s.report);
  status.statusVersion = s.statusVersion;
  status.phase = s.phase;
  status.runnerAck =
    s.ackedVersion === null
      ? undefined
      : create(EnvironmentStatus_RunnerACKSchema, { specVersion: s.ackedVersion, statusCode: EnvironmentStatus_RunnerACK_StatusCode.OK });
  status.activitySignal = s.activity;
  if (s.waiting) status.warningMessage = [...status.warningMessage, s.waiting];
  // "This field is only set if the environment is running."
  if (s.phase !== P.RUNNING && s.phase !== P.UPDATING) status.environmentUrls = undefined;
  return status;
}

/** The environment as clients see it at `now` (which decides whether it is archived). */
export function environmentOf(id: string, s: DevEnvironmentState, now = Date.now()): Environment {
  const metadata = clone(EnvironmentMetadataSchema, s.metadata);
  const archived = archiveAt(s);
  if (archived !== null && archived <= now) metadata.archivedAt = timestampFromMs(archived);
  return create(EnvironmentSchema, { id, metadata, spec: s.spec, status: statusOf(s) });
}

/** The runner's `environment-desired` for `s`. */
export const desiredMessage = (id: string, s: DevEnvironmentState): ServerMessage => ({
  type: "environment-desired",
  environmentId: id,
  specVersion: Number(s.spec.specVersion),
  desiredPhase: s.spec.desiredPhase === P.DELETED ? "deleted" : s.spec.desiredPhase === P.STOPPED ? "stopped" : "running",
  spec: toJson(EnvironmentSpecSchema, s.spec),
});

/**
 * The data of the environment's events (`dev-environment.created|updated|status-updated|deleted`,
 * like the automations' `service.*`): WatchEvents names the resource by `environmentId`.
 */
export const eventData = (environmentId: string, s: DevEnvironmentState) => ({
  environmentId,
  phase: P[s.phase]!,
  desiredPhase: P[s.spec.desiredPhase]!,
  specVersion: Number(s.spec.specVersion),
  statusVersion: Number(s.statusVersion),
});

/**
 * The D1 statement mirroring the environment into `dev_environments`, unless D1 already has
 * a later revision. The snapshot leaves out `archivedAt`, which depends on when it is read.
 */
export function summaryStatement(env: Env, id: string, c: Committed): D1PreparedStatement {
  const s = c.state;
  const snapshot = environmentOf(id, s, Number.NEGATIVE_INFINITY);
  return mirrorStatement(env, {
    id,
    creatorId: s.metadata.creator?.id ?? "",
    projectId: s.metadata.projectId,
    runnerId: s.metadata.runnerId,
    phase: P[s.phase],
    archiveAt: archiveAt(s),
    revision: c.revision,
    environment: toJsonString(EnvironmentSchema, snapshot),
  });
}
