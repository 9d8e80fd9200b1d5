/** `edgeplane capsule …`: capsules and, below them, deploys, rollouts, instances, jobs and images. */
import { Command } from "@commander-js/extra-typings";
import { State } from "../../../proto/gen/api/v1/capsule/rollout/status_pb";
import { GetResponseSchema, ListResponseSchema, Service as CapsuleService } from "../../../proto/gen/api/v1/capsule/service_pb";
import { CliError, ExitCode } from "../exit";
import { age, printFields, printJson, printMessage, printTable, when } from "../output";
import { instancesOf } from "../rollout-view";
import { say } from "../terminal";
import type { Cli } from "./cli";
import { deployCommand } from "./deploy";
import { imageCommand } from "./image";
import { instanceCommand } from "./instance";
import { jobsCommand } from "./jobs";
import { pagination, paginationOptions } from "./pages";
import { rolloutCommand, rolloutState } from "./rollout";

export function capsuleCommand(cli: Cli) {
  const capsule = new Command("capsule").description("capsules: the deployable units of a project");

  capsule
    .command("create")
    .argument("<capsule>", "the capsule's name (a DNS label)")
    .action(async (name) => {
      const session = cli.session();
      await session.client(CapsuleService).create({ projectId: session.project, name });
      say(`Capsule ${name} created in project ${session.project}`);
    });

  capsule
    .command("get")
    .argument("<capsule>")
    .action(async (capsuleId) => {
      const session = cli.session();
      const res = await session.client(CapsuleService).get({ projectId: session.project, capsuleId });
      printMessage(session.options.output, GetResponseSchema, res, () =>
        printFields([
          ["capsule", res.capsule?.capsuleId],
          ["project", session.project],
          ["updated", when(res.capsule?.updatedAt)],
          ["updated by", res.capsule?.updatedBy?.printableName || res.capsule?.updatedBy?.identifier],
        ]),
      );
    });

  paginationOptions(capsule.command("list"))
    .description("list the project's capsules")
    .action(async (opts) => {
      const session = cli.session();
      const res = await session.client(CapsuleService).list({ projectId: session.project, pagination: pagination(opts) });
      printMessage(session.options.output, ListResponseSchema, res, () =>
        printTable(["capsule", "updated", "by"], res.capsules.map((c) => [c.capsuleId, age(c.updatedAt), c.updatedBy?.identifier ?? "-"])),
      );
    });

  capsule
    .command("delete")
    .argument("<capsule>")
    .action(async (capsuleId) => {
      const session = cli.session();
      await session.client(CapsuleService).delete({ projectId: session.project, capsuleId });
      say(`Capsule ${capsuleId} deleted`);
    });

  capsule
    .command("status")
    .description("the capsule's current rollout in the environment and its instances")
    .argument("<capsule>")
    .action(async (capsuleId) => {
      const session = cli.session();
      const capsules = session.client(CapsuleService);
      const scope = { projectId: session.project, environmentId: session.environment, capsuleId };
      const [{ rollouts }, { instances }] = await Promise.all([
        capsules.listRollouts({ ...scope, pagination: { limit: 1 } }),
        capsules.listInstances(scope),
      ]);
      const current = rollouts[0];
      const counts = instancesOf(current?.status);
      const status = {
        capsuleId,
        environmentId: scope.environmentId,
        rolloutId: String(current?.rolloutId ?? 0),
        state: current ? rolloutState(current.status) : "NONE",
        replicas: current?.config?.replicas ?? 0,
        ready: counts?.numReady ?? 0,
        instances: instances.map((i) => i.instanceId),
      };
      if (session.options.output !== "pretty") return printJson(session.options.output, status);
      printFields([
        ["capsule", capsuleId],
        ["environment", scope.environmentId],
        ["rollout", current ? `${current.rolloutId} (${status.state})` : "none"],
        ["image", current?.config?.imageId || "-"],
        ["instances", `${status.ready} of ${status.replicas} ready`],
      ]);
    });

  capsule
    .command("stop")
    .description("stop the capsule's current rollout in the environment: its instances are removed")
    .argument("<capsule>")
    .action(async (capsuleId) => {
      const session = cli.session();
      const capsules = session.client(CapsuleService);
      const projectId = session.project;
      const { rollouts } = await capsules.listRollouts({ projectId, environmentId: session.environment, capsuleId, pagination: { limit: 1 } });
      const current = rollouts[0];
      if (!current || current.status?.state === State.STOPPED) {
        throw new CliError(`failed_precondition: capsule ${capsuleId} has no running rollout in ${session.environment}`, ExitCode.refused);
      }
      await capsules.stopRollout({ projectId, capsuleId, rolloutId: current.rolloutId });
      say(`Rollout ${current.rolloutId} of ${capsuleId} stopped`);
    });

  capsule.addCommand(deployCommand(cli));
  capsule.addCommand(rolloutCommand(cli));
  capsule.addCommand(instanceCommand(cli));
  capsule.addCommand(jobsCommand(cli));
  capsule.addCommand(imageCommand(cli));
  return capsule;
}

