/** `edgeplane capsule rollout list|get|events|abort|rollback`. */
import { create } from "@bufbuild/protobuf";
import { Command } from "@commander-js/extra-typings";
import { Result, State, type Status, StepState } from "../../../proto/gen/api/v1/capsule/rollout/status_pb";
import {
  DeployRequestSchema,
  GetRolloutResponseSchema,
  ListEventsResponseSchema,
  ListRolloutsResponseSchema,
  Service as CapsuleService,
} from "../../../proto/gen/api/v1/capsule/service_pb";
import { CliError, ExitCode } from "../exit";
import { age, printFields, printMessage, printTable, when } from "../output";
import { stepsOf } from "../rollout-view";
import { waitForRollout } from "../rollout-watch";
import { say } from "../terminal";
import type { Cli } from "./cli";
import { deployAsking } from "./deploy";
import { duration, rolloutId } from "./flags";
import { pagination, paginationOptions } from "./pages";

/** "RUNNING", "STOPPED (REPLACED)", … */
export function rolloutState(status: Status | undefined): string {
  if (!status) return "UNSPECIFIED";
  const state = State[status.state];
  return status.state === State.STOPPED && status.result !== Result.UNSPECIFIED ? `${state} (${Result[status.result]})` : state;
}

export function rolloutCommand(cli: Cli) {
  const rollout = new Command("rollout").description("a capsule's rollouts in the environment");

  paginationOptions(rollout.command("list"))
    .argument("<capsule>")
    .action(async (capsuleId, opts) => {
      const session = cli.session();
      const res = await session.client(CapsuleService).listRollouts({ projectId: session.project, environmentId: session.environment, capsuleId, pagination: pagination(opts) });
      printMessage(session.options.output, ListRolloutsResponseSchema, res, () =>
        printTable(
          ["rollout", "state", "image", "replicas", "age", "by"],
          res.rollouts.map((r) => [String(r.rolloutId), rolloutState(r.status), r.config?.imageId || "-", r.config?.replicas ?? 0, age(r.config?.createdAt), r.config?.createdBy?.identifier ?? "-"]),
        ),
      );
    });

  rollout
    .command("get")
    .argument("<capsule>")
    .argument("<rollout>", "the rollout id", rolloutId)
    .action(async (capsuleId, id) => {
      const session = cli.session();
      const res = await session.client(CapsuleService).getRollout({ projectId: session.project, capsuleId, rolloutId: id });
      printMessage(session.options.output, GetRolloutResponseSchema, res, () => {
        const r = res.rollout;
        printFields([
          ["rollout", String(r?.rolloutId)],
          ["state", rolloutState(r?.status)],
          ["environment", r?.config?.environmentId],
          ["image", r?.config?.imageId || "-"],
          ["replicas", r?.config?.replicas ?? 0],
          ["created", when(r?.config?.createdAt)],
          ["by", r?.config?.createdBy?.identifier],
          ["message", r?.config?.message || "-"],
        ]);
        for (const { stage, info } of stepsOf(r?.status)) say(`  ${stage}: ${info.name} ${StepState[info.state]}${info.message ? ` — ${info.message}` : ""}`);
      });
    });

  paginationOptions(rollout.command("events"))
    .argument("<capsule>")
    .argument("<rollout>", "the rollout id", rolloutId)
    .action(async (capsuleId, id, opts) => {
      const session = cli.session();
      const res = await session.client(CapsuleService).listEvents({ projectId: session.project, environmentId: session.environment, capsuleId, rolloutId: id, pagination: pagination(opts) });
      printMessage(session.options.output, ListEventsResponseSchema, res, () =>
        printTable(["time", "kind", "message"], res.events.map((e) => [when(e.createdAt), e.eventData?.kind.case ?? "-", e.message])),
      );
    });

  rollout
    .command("abort")
    .argument("<capsule>")
    .argument("<rollout>", "the rollout id", rolloutId)
    .action(async (capsuleId, id) => {
      const session = cli.session();
      await session.client(CapsuleService).abortRollout({ projectId: session.project, capsuleId, rolloutId: id });
      say(`Rollout ${id} of ${capsuleId} aborted`);
    });

  rollout
    .command("rollback")
    .description("deploy an earlier rollout's configuration again (default: the one before the current)")
    .argument("<capsule>")
    .argument("[rollout]", "the rollout to go back to", rolloutId)
    .option("--force", "abort a rollout in progress instead of failing")
    .option("--no-wait", "return once the rollout is created")
    .option("-t, --timeout <duration>", "fail when it is not ready by then", duration)
    .action(async (capsuleId, to, opts) => {
      const session = cli.session();
      const projectId = session.project;
      const environmentId = session.environment;
      let target = to;
      if (target === undefined) {
        const { rollouts } = await session.client(CapsuleService).listRollouts({ projectId, environmentId, capsuleId, pagination: { limit: 2 } });
        target = rollouts[1]?.rolloutId;
        if (target === undefined) throw new CliError(`failed_precondition: capsule ${capsuleId} has no earlier rollout in ${environmentId} to roll back to`, ExitCode.refused);
      }
      const res = await deployAsking(
        session,
        create(DeployRequestSchema, { projectId, environmentId, capsuleId, force: opts.force ?? false, message: `rollback to rollout ${target}`, changes: [{ field: { case: "rollback", value: { rollbackId: target } } }] }),
      );
      say(`Rolling ${capsuleId} back to rollout ${target}: rollout ${res.rolloutId}`);
      if (opts.wait) await waitForRollout(session, { projectId, capsuleId, environmentId, rolloutId: res.rolloutId }, { timeoutMs: opts.timeout ?? 0 });
    });

  return rollout;
}
