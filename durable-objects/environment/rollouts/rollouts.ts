/**
 * Deploys and rollouts of the environment's capsules: each capsule's rollout sequence (the
 * current, in progress and desired rollout), handing rollouts to their objects and to the
 * runner, and what the rollout objects report back. Work on one capsule runs on its queue.
 */
import { fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { type RolloutConfig, RolloutConfigSchema } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import type { DeployRequest } from "../../../proto/gen/api/v1/capsule/service_pb";
import { aborted, bounded, failedPrecondition, notFound } from "../../../workers/core/errors";
import { insertImage } from "../../../workers/d1/images";
import { parseReference } from "../../../workers/core/image-reference";
import { applyChanges } from "../../../workers/core/rollouts/changes";
import { scheduleStatements } from "../../../workers/d1/cron-schedules";
import { dropDeploymentStatement, recordDeploymentStatement } from "../../../workers/d1/deployments";
import { allocatedRolloutId, rolloutIdStatement } from "../../../workers/d1/rollout-ids";
import { writeBatch } from "../../../workers/d1/batch";
import { renderResources } from "../../../workers/core/rollouts/resources";
import { capsuleKey, type EnvironmentHost } from "../host";
import type { JobExecutions } from "../jobs/jobs";
import type { EnvironmentSkaffold } from "../skaffold/skaffold";
import { unwrap } from "../../../workers/core/outcome";
import { type Author, rolloutName } from "../../contract";
import type { RolloutSummary } from "../../rollout/rollout";
import type { RunnerMessage } from "../../../proto/frames/runner";
import { registryAuthsFor } from "../../../workers/d1/registries";

/** A capsule deployed in the environment, as the object holds it. */
export interface DeployedCapsule {
  projectId: string;
  capsuleId: string;
}

/** A Deploy as the Worker hands it over, authorized and checked against D1. */
export interface DeployInput {
  /** The request, with the environment it resolved to. */
  request: DeployRequest;
  /** model.Author init shape of the caller. */
  createdBy: Author;
  /** The capsule's registered image ids, for `image_id` changes. */
  imageIds: string[];
  /** The Kubernetes namespace of the capsule's project in this environment. */
  namespace: string;
}

export interface DeployResult {
  rolloutId: number;
  config: RolloutConfig;
  resources: Record<string, string>;
}

type CapsuleState = {
  current_rollout_id: number | null;
  in_progress_rollout_id: number | null;
  desired_rollout_id: number | null;
};

/** A committed rollout whose object could not be reached is handed over again this soon. */
const RETRY_START_MS = 5_000;
/** Timer kind (timers.ts). */
export const START_ROLLOUT = "start-rollout";

export class CapsuleRollouts {
  constructor(
    private readonly host: EnvironmentHost,
    private readonly jobs: JobExecutions,
    private readonly skaffold: EnvironmentSkaffold,
  ) {}

  /** Capsules with a rollout the runner should run here, by project then capsule. */
  deployed(): DeployedCapsule[] {
    return this.host
      .open()
      .sql.exec<{ project_id: string; capsule_id: string }>(
        "SELECT project_id, capsule_id FROM capsule_state WHERE desired_rollout_id IS NOT NULL ORDER BY project_id, capsule_id",
      )
      .toArray()
      .map((r) => ({ projectId: r.project_id, capsuleId: r.capsule_id }));
  }

  capsuleState(projectId: string, capsuleId: string): CapsuleState {
    return (
      this.host
        .open()
        .sql.exec<CapsuleState>(
          "SELECT current_rollout_id, in_progress_rollout_id, desired_rollout_id FROM capsule_state WHERE project_id = ? AND capsule_id = ?",
          projectId,
          capsuleId,
        )
        .toArray()[0] ?? { current_rollout_id: null, in_progress_rollout_id: null, desired_rollout_id: null }
    );
  }

  rolloutConfig(projectId: string, capsuleId: string, rolloutId: number): RolloutConfig | undefined {
    const row = this.host
      .open()
      .sql.exec<{ config: ArrayBuffer }>("SELECT config FROM rollouts WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?", projectId, capsuleId, rolloutId)
      .toArray()[0];
    return row ? fromBinary(RolloutConfigSchema, new Uint8Array(row.config)) : undefined;
  }

  private rollout(projectId: string, capsuleId: string, rolloutId: number) {
    return this.host.env.ROLLOUTS.getByName(rolloutName(projectId, capsuleId, rolloutId));
  }

  /**
   * Deploy: the capsule's next rollout, from its current configuration and the request's
   * changes. Deploys of one capsule run one at a time, so of two racing ones exactly one
   * starts a rollout and the other finds it in progress.
   */
  deploy(input: DeployInput): Promise<DeployResult> {
    const req = input.request;
    return this.host.serialize(capsuleKey(req.projectId, req.capsuleId), () => this.deployNow(req, input));
  }

  private async deployNow(req: DeployRequest, input: DeployInput): Promise<DeployResult> {
    const { env, ctx, stream } = this.host;
    const { environmentId } = this.host.requireIdentity();
    const { projectId, capsuleId } = req;
    const state = this.capsuleState(projectId, capsuleId);
    const current = state.current_rollout_id;
    if (req.currentRolloutId !== 0n && BigInt(current ?? 0) !== req.currentRolloutId) {
      throw aborted(`current_rollout_id: the current rollout is ${current ?? "none"}, not ${req.currentRolloutId}; someone deployed in between`);
    }
    const images = new Set(input.imageIds);
    const now = Date.now();
    const config = applyChanges(current ? this.rolloutConfig(projectId, capsuleId, current) : undefined, req.changes, {
      author: input.createdBy,
      now,
      environmentId,
      message: req.message,
      rollbackConfig: (id) => this.rolloutConfig(projectId, capsuleId, Number(id)),
      imageExists: (id) => images.has(id),
    });
    const resources = renderResources({ projectId, capsuleId, environmentId, namespace: input.namespace }, config);
    if (req.dryRun) return { rolloutId: 0, config, resources };

    const running = state.in_progress_rollout_id;
    if (running !== null && !req.force) {
      throw failedPrecondition(`rollout ${running} of capsule ${capsuleId} is in progress: wait for it, abort it, or deploy with force`);
    }
    const added = req.changes.find((c) => c.field.case === "addImage");
    const plan = this.host.open().jobs.plan(projectId, capsuleId, config.cronJobs, now);
    // One D1 transaction allocates the id and records the deployment. D1 before this object's
    // commit: an image marked in use a moment early is safe; one deployed but not marked is not.
    const [counter, deployment] = await writeBatch(env, [
      rolloutIdStatement(env, projectId, capsuleId),
      recordDeploymentStatement(env, { projectId, capsuleId, environmentId, imageId: config.imageId, now }),
      // Registered as Image.Add would, without asking the registry (the change named the image).
      ...(added ? [insertImage(env, { projectId, capsuleId, id: config.imageId, ref: parseReference(config.imageId), createdBy: input.createdBy, now })] : []),
      ...scheduleStatements(env, { environmentId, projectId, capsuleId }, plan),
    ]);
    const rolloutId = allocatedRolloutId(counter!);
    if (deployment!.meta.changes === 0) throw notFound(`capsule ${bounded(capsuleId)} in project ${bounded(projectId)}`);

    const configBytes = toBinary(RolloutConfigSchema, config);
    const { sql } = this.host.open();
    ctx.storage.transactionSync(() => {
      sql.exec(
        "INSERT INTO rollouts (project_id, capsule_id, rollout_id, config, previous_rollout_id, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        projectId,
        capsuleId,
        rolloutId,
        configBytes,
        current,
        JSON.stringify(input.createdBy),
        now,
      );
      sql.exec(
        `INSERT INTO capsule_state (project_id, capsule_id, current_rollout_id, in_progress_rollout_id, desired_rollout_id, updated_at)
         VALUES (?1, ?2, ?3, ?3, ?3, ?4) ON CONFLICT DO UPDATE SET current_rollout_id = ?3, in_progress_rollout_id = ?3, desired_rollout_id = ?3, updated_at = ?4`,
        projectId,
        capsuleId,
        rolloutId,
        now,
      );
      this.host.open().jobs.setJobs(projectId, capsuleId, rolloutId, config.cronJobs, plan);
      stream.publish("rollout.created", { projectId, capsuleId, rolloutId, previousRolloutId: current, message: req.message });
    });
    await this.jobs.terminate(projectId, capsuleId, `rollout ${rolloutId} replaced rollout ${current}`, rolloutId);

    if (current !== null) {
      // The rollout this one follows ends: aborted if it was still in progress (force), else replaced.
      const previous = this.rollout(projectId, capsuleId, current);
      const abortedOutcome = running !== null ? await previous.abort(input.createdBy) : null;
      if (abortedOutcome?.ok) this.track(abortedOutcome.value);
      else this.track(await previous.replace(rolloutId, req.changes.some((c) => c.field.case === "rollback"), input.createdBy));
    }
    await this.startRollout(projectId, capsuleId, rolloutId);
    return { rolloutId, config, resources };
  }

  /**
   * Hands a committed rollout to its object and the runner. If the object cannot be reached
   * the rollout stays unstarted and the alarm tries again: a committed rollout always starts.
   */
  private async startRollout(projectId: string, capsuleId: string, rolloutId: number): Promise<void> {
    const { environmentId } = this.host.requireIdentity();
    const { sql } = this.host.open();
    const row = sql
      .exec<{ config: ArrayBuffer; previous_rollout_id: number | null; created_by: string }>(
        "SELECT config, previous_rollout_id, created_by FROM rollouts WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?",
        projectId,
        capsuleId,
        rolloutId,
      )
      .one();
    const previous = row.previous_rollout_id !== null ? this.rolloutConfig(projectId, capsuleId, row.previous_rollout_id) : undefined;
    const runner = this.host.runner();
    try {
      const summary = await this.rollout(projectId, capsuleId, rolloutId).start({
        projectId,
        capsuleId,
        rolloutId,
        environmentId,
        config: new Uint8Array(row.config),
        previous: previous ? toBinary(RolloutConfigSchema, previous) : null,
        runner: runner ? runner.name : null,
        createdBy: JSON.parse(row.created_by) as Author | null,
      });
      sql.exec("UPDATE rollouts SET started = 1 WHERE project_id = ? AND capsule_id = ? AND rollout_id = ?", projectId, capsuleId, rolloutId);
      this.track(summary);
    } catch (err) {
      console.error(`rollout ${rolloutName(projectId, capsuleId, rolloutId)} could not start; retrying`, err);
      await this.host.open().timers.set(START_ROLLOUT, rolloutName(projectId, capsuleId, rolloutId), Date.now() + RETRY_START_MS);
      return;
    }
    await this.sendDesired(projectId, capsuleId);
  }

  /** The START_ROLLOUT timer `key` (a rollout's name) fired: hands the rollout over again if it is still unstarted. */
  async retryStart(key: string): Promise<void> {
    const r = this.host
      .open()
      .sql.exec<{ project_id: string; capsule_id: string; rollout_id: number }>(
        "SELECT project_id, capsule_id, rollout_id FROM rollouts WHERE started = 0 AND project_id || '/' || capsule_id || '/' || rollout_id = ?",
        key,
      )
      .toArray()[0];
    if (r) await this.host.serialize(capsuleKey(r.project_id, r.capsule_id), () => this.startRollout(r.project_id, r.capsule_id, r.rollout_id));
  }

  /** Records what a rollout's object reported: a rollout that settled or stopped is no longer in progress. */
  track(summary: RolloutSummary): void {
    const { projectId, capsuleId, rolloutId } = summary;
    if (!summary.inProgress) {
      this.host
        .open()
        .sql.exec(
          "UPDATE capsule_state SET in_progress_rollout_id = NULL, updated_at = ? WHERE project_id = ? AND capsule_id = ? AND in_progress_rollout_id = ?",
          Date.now(),
          projectId,
          capsuleId,
          rolloutId,
        );
    }
    if (summary.message) {
      const { state, result, inProgress, message } = summary;
      this.host.stream.publish("rollout.updated", { projectId, capsuleId, rolloutId, state, result, inProgress, message });
    }
    this.skaffold.onRollout(summary);
  }

  /** AbortRollout of a rollout of this environment. */
  abort(projectId: string, capsuleId: string, rolloutId: number, createdBy: Author): Promise<void> {
    return this.host.serialize(capsuleKey(projectId, capsuleId), async () => {
      this.track(unwrap(await this.rollout(projectId, capsuleId, rolloutId).abort(createdBy)));
    });
  }

  /** StopRollout: the runner removes the rollout's resources, and the capsule no longer runs it. */
  stop(projectId: string, capsuleId: string, rolloutId: number, createdBy: Author): Promise<void> {
    return this.host.serialize(capsuleKey(projectId, capsuleId), async () => {
      const summary = unwrap(await this.rollout(projectId, capsuleId, rolloutId).stop(createdBy));
      const { env, ctx } = this.host;
      const { environmentId } = this.host.requireIdentity();
      const state = this.capsuleState(projectId, capsuleId);
      if (state.desired_rollout_id === rolloutId) {
        await writeBatch(env, [
          dropDeploymentStatement(env, { projectId, capsuleId, environmentId, rolloutId }),
          ...scheduleStatements(env, { environmentId, projectId, capsuleId }, []),
        ]);
        ctx.storage.transactionSync(() => {
          this.host
            .open()
            .sql.exec("UPDATE capsule_state SET desired_rollout_id = NULL, updated_at = ? WHERE project_id = ? AND capsule_id = ?", Date.now(), projectId, capsuleId);
          this.host.open().jobs.clearJobs(projectId, capsuleId);
        });
        await this.jobs.terminate(projectId, capsuleId, `rollout ${rolloutId} was stopped`);
      }
      this.track(summary);
      this.host.toRunner({ type: "stop", projectId, capsuleId, rolloutId });
    });
  }

  /**
   * The environment was deleted. Its rollouts outlive it (their ids are not reused), so the
   * ones not yet ended are stopped.
   */
  async stopLive(): Promise<void> {
    const live = this.host.identity()
      ? this.host
          .open()
          .sql.exec<{ project_id: string; capsule_id: string; current_rollout_id: number }>(
            "SELECT project_id, capsule_id, current_rollout_id FROM capsule_state WHERE current_rollout_id IS NOT NULL",
          )
          .toArray()
      : [];
    // Best effort: a rollout that cannot be told now still reads as it was, never as running somewhere.
    await Promise.allSettled(live.map((r) => this.rollout(r.project_id, r.capsule_id, r.current_rollout_id).stop(null)));
  }

  /** A capsule's rollout ids in this environment, newest first unless `ascending`, and how many there are. */
  list(projectId: string, capsuleId: string, offset: number, limit: number, ascending: boolean): { ids: number[]; total: number } {
    const { sql } = this.host.open();
    const total = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM rollouts WHERE project_id = ? AND capsule_id = ?", projectId, capsuleId).one().n;
    const ids = sql
      .exec<{ rollout_id: number }>(
        `SELECT rollout_id FROM rollouts WHERE project_id = ? AND capsule_id = ? ORDER BY rollout_id ${ascending ? "ASC" : "DESC"} LIMIT ? OFFSET ?`,
        projectId,
        capsuleId,
        limit,
        offset,
      )
      .toArray()
      .map((r) => r.rollout_id);
    return { ids, total };
  }

  /** Sends the capsule's desired rollout to the runner (level-triggered: the whole config). */
  async sendDesired(projectId: string, capsuleId: string): Promise<void> {
    const { desired_rollout_id: id } = this.capsuleState(projectId, capsuleId);
    if (id === null) return;
    const config = this.rolloutConfig(projectId, capsuleId, id);
    if (!config) return;
    // The runner pulls with the project settings' credentials for the image's registry, and only those.
    const registries = await registryAuthsFor(this.host.env, config.imageId);
    this.host.toRunner({
      type: "desired",
      projectId,
      capsuleId,
      rolloutId: id,
      config: toJson(RolloutConfigSchema, config),
      ...(registries.length > 0 ? { registries } : {}),
    });
  }


  /**
   * Tells every rollout in progress what the runner is up to; with `waitingOnly`, only those
   * still waiting for their resources (a reconnect changes nothing for a running rollout).
   */
  async runnerNews(message: string, waitingOnly = false): Promise<void> {
    const rows = this.host
      .open()
      .sql.exec<{ project_id: string; capsule_id: string; in_progress_rollout_id: number }>(
        "SELECT project_id, capsule_id, in_progress_rollout_id FROM capsule_state WHERE in_progress_rollout_id IS NOT NULL",
      )
      .toArray();
    for (const r of rows) {
      await this.host.serialize(capsuleKey(r.project_id, r.capsule_id), async () => {
        this.track(await this.rollout(r.project_id, r.capsule_id, r.in_progress_rollout_id).runnerNews(message, waitingOnly));
      });
    }
  }

  /** `applied` or `apply-failed`: the runner's word on applying a rollout's resources. */
  onApplyReport(msg: Extract<RunnerMessage, { type: "applied" | "apply-failed" }>): Promise<void> {
    return this.host.serialize(capsuleKey(msg.projectId, msg.capsuleId), async () => {
      // Reports about a rollout that is no longer in progress (a stale runner) change nothing.
      if (this.capsuleState(msg.projectId, msg.capsuleId).in_progress_rollout_id !== msg.rolloutId) return;
      const rollout = this.rollout(msg.projectId, msg.capsuleId, msg.rolloutId);
      const summary =
        msg.type === "applied"
          ? await rollout.applied(Array.isArray(msg.resources) ? msg.resources : [])
          : await rollout.applyFailed(String(msg.message || "the runner gave no reason"));
      this.track(summary);
      if (msg.type === "applied") {
        if (Array.isArray(msg.endpoints)) this.host.open().jobs.setEndpoints(msg.projectId, msg.capsuleId, msg.endpoints);
        await this.countFor(msg.projectId, msg.capsuleId);
      }
    });
  }

  /** Updates the counts of the capsule's rollout in progress from its stored instances. */
  async countFor(projectId: string, capsuleId: string): Promise<void> {
    const id = this.capsuleState(projectId, capsuleId).in_progress_rollout_id;
    if (id === null) return;
    this.track(await this.rollout(projectId, capsuleId, id).instances(this.host.open().reports.counts(projectId, capsuleId, id)));
  }
}
