/**
 * Waiting for a rollout, as Rig's `capsule deploy` does: its stream (docs/event-streams.md)
 * says when it changed, GetRollout says how, until it is running and ready (success), stuck,
 * failed, aborted or replaced (failure); `--timeout` expiring rolls back to the rollout before it.
 */
import { Result, State, type Status, StepState } from "../../proto/gen/api/v1/capsule/rollout/status_pb";
import { Service as CapsuleService } from "../../proto/gen/api/v1/capsule/service_pb";
import { follow } from "./events";
import { CliError, ExitCode } from "./exit";
import { instancesOf, RolloutView } from "./rollout-view";
import type { Session } from "./session";
import { color } from "./terminal";

export interface RolloutTarget {
  projectId: string;
  capsuleId: string;
  environmentId: string;
  rolloutId: bigint;
}

export interface WaitOptions {
  /** Give up after this long (0: wait as long as it takes). */
  timeoutMs: number;
  /** Where `--timeout` rolls back to: the rollout before this one (none: nothing to roll back to). */
  rollbackTo?: bigint;
  /** Show no progress (the command prints JSON or YAML). */
  quiet?: boolean;
}

type Verdict = { ok: true; message: string } | { ok: false; message: string } | undefined;

/** Whether the rollout has come to an end that `deploy` reports. */
export function verdict(status: Status | undefined, replicas: number): Verdict {
  if (!status) return undefined;
  const id = status.rolloutId;
  if (status.state === State.STOPPED) {
    const why: Record<Result, string> = {
      [Result.UNSPECIFIED]: "was stopped",
      [Result.REPLACED]: "was replaced by a newer rollout",
      [Result.FAILED]: "failed",
      [Result.ABORTED]: "was aborted",
      [Result.ROLLBACK]: "was rolled back",
    };
    return { ok: false, message: `rollout ${id} ${why[status.result]}` };
  }
  const instances = instancesOf(status);
  if (status.state !== State.RUNNING || !instances) return undefined;
  if (instances.info?.state === StepState.DONE) return { ok: true, message: `rollout ${id} is running: ${replicas} of ${replicas} instance(s) ready` };
  if (instances.info?.state === StepState.FAILED) return { ok: false, message: `rollout ${id} is ${instances.info.message}` };
  return undefined;
}

/** Follows the rollout until it ends; throws a CliError (exit 1) unless it became healthy. */
export async function waitForRollout(session: Session, target: RolloutTarget, opts: WaitOptions): Promise<void> {
  const capsules = session.client(CapsuleService);
  const { projectId, capsuleId, rolloutId } = target;
  const view = new RolloutView(opts.quiet);
  view.waiting(`Waiting for rollout ${rolloutId} to start…`);
  const timeout = new AbortController();
  const timer = opts.timeoutMs > 0 ? setTimeout(() => timeout.abort(), opts.timeoutMs) : undefined;
  let result: Verdict;
  let lastMessage = "";
  try {
    await follow(session, {
      ticketPath: `/projects/${projectId}/capsules/${capsuleId}/rollouts/${rolloutId}/events/tickets`,
      signal: timeout.signal,
      onEvent: async (event) => {
        if (event.data && typeof event.data === "object" && "message" in event.data && typeof event.data.message === "string") lastMessage = event.data.message;
        const { rollout } = await capsules.getRollout({ projectId, capsuleId, rolloutId });
        const replicas = rollout?.config?.replicas ?? 0;
        view.update(rollout?.status, replicas);
        result = verdict(rollout?.status, replicas);
        return result !== undefined;
      },
    });
  } finally {
    clearTimeout(timer);
    view.stop();
  }
  if (result?.ok) {
    view.line(color.green(`✔ ${result.message}`));
    return;
  }
  if (result) throw new CliError(`${result.message}${lastMessage && !result.message.includes(lastMessage) ? `: ${lastMessage}` : ""}`, ExitCode.rolloutFailed);
  // Only the timeout ends the stream without a verdict.
  const after = `${Math.round(opts.timeoutMs / 1000)}s`;
  if (opts.rollbackTo === undefined) throw new CliError(`rollout ${rolloutId} timed out after ${after}; it is left as it is`, ExitCode.rolloutFailed);
  const { rolloutId: rollback } = await capsules.deploy({
    projectId,
    capsuleId,
    environmentId: target.environmentId,
    force: true,
    message: `rollback of rollout ${rolloutId}: timed out after ${after}`,
    changes: [{ field: { case: "rollback", value: { rollbackId: opts.rollbackTo } } }],
  });
  throw new CliError(`rollout ${rolloutId} timed out after ${after}; rolled back to rollout ${opts.rollbackTo} (rollout ${rollback})`, ExitCode.rolloutFailed);
}
