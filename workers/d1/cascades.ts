/**
 * Deletes that span tables: each statement comes from the module that owns its table; this
 * module only puts them into one transaction, so nothing outlives what it belongs to. It sits
 * above the owners (which import one another for reads), so the cascades add no cycle.
 */
import type { Env } from "../env";
import { unindexEnvironment } from "./automation-index";
import { writeBatch } from "./batch";
import { capsuleCountQuery, deleteUndeployedCapsule } from "./capsules";
import { unscheduleEnvironment } from "./cron-schedules";
import { deleteDeploymentsIn, deployedInQuery } from "./deployments";
import { deleteDevEnvironmentSummary } from "./dev-environments";
import { deleteEnvironmentRow, unlinkDeletedProject, unlinkEnvironment } from "./environments";
import { deleteImagesOfUndeployedCapsule } from "./images";
import { deleteProjectRow } from "./projects";
import { deleteRegistriesOfDeletedProject } from "./registries";

/**
 * The statements deleting environment `id`'s rows, the first one its `environments` row. The
 * object's own state goes with its `destroy()`, which callers run after the batch; the
 * automations' index goes here, in the same batch, so no row outlives the environment even if
 * `destroy()` fails.
 */
export const deleteEnvironmentStatements = (env: Env, id: string): D1PreparedStatement[] => [
  deleteEnvironmentRow(env, id),
  unlinkEnvironment(env, id),
  deleteDeploymentsIn(env, id),
  unscheduleEnvironment(env, id),
  deleteDevEnvironmentSummary(env, id),
  unindexEnvironment(env, id),
];

/** Runs `deleteEnvironmentStatements` in one batch; false if there was no such environment. */
export async function deleteEnvironment(env: Env, id: string): Promise<boolean> {
  const [deleted] = await writeBatch(env, deleteEnvironmentStatements(env, id));
  return deleted!.meta.changes > 0;
}

/**
 * Deletes a project with its rows, in one transaction and only while it has no capsules: a
 * capsule (with its images and rollouts) is deleted on its own first, so nothing is left
 * without its project. Answers whether it was deleted and, if not, how many capsules it has.
 */
export async function deleteProject(env: Env, id: string): Promise<{ deleted: boolean; capsules: number }> {
  const capsules = capsuleCountQuery(env, id);
  const [deleted, counted] = await writeBatch(env, [
    deleteProjectRow(env, id),
    capsules.statement,
    unlinkDeletedProject(env, id),
    deleteRegistriesOfDeletedProject(env, id),
  ]);
  return { deleted: deleted!.meta.changes > 0, capsules: capsules.rows(counted!)[0]!.n };
}

/**
 * Deletes a capsule and its images in one transaction, unless it is still deployed somewhere:
 * then answers the environments it is deployed in (comma-separated) and deletes nothing.
 */
export async function deleteCapsule(env: Env, projectId: string, capsuleId: string): Promise<{ deployedIn: string | null; deleted: boolean }> {
  const where = deployedInQuery(env, projectId, capsuleId);
  const [deployed, deleted] = await writeBatch(env, [
    where.statement,
    deleteUndeployedCapsule(env, projectId, capsuleId),
    deleteImagesOfUndeployedCapsule(env, projectId, capsuleId),
  ]);
  return { deployedIn: where.rows(deployed!)[0]?.envs ?? null, deleted: deleted!.meta.changes > 0 };
}
