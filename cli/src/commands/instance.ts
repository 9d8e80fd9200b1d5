/** `edgeplane capsule instance list|get|restart|logs|exec`, as the environment's runner reports them. */
import { Command } from "@commander-js/extra-typings";
import { State } from "../../../proto/gen/api/v1/capsule/instance_pb";
import { StageState } from "../../../proto/gen/api/v1/capsule/instance/status_pb";
import { GetInstanceStatusResponseSchema, ListInstancesResponseSchema, Service as CapsuleService } from "../../../proto/gen/api/v1/capsule/service_pb";
import { CliError, usage } from "../exit";
import { exec } from "../exec";
import { printLogs } from "../logs";
import { age, printFields, printMessage, printTable, when } from "../output";
import { say } from "../terminal";
import type { Cli } from "./cli";
import { duration } from "./flags";
import { pagination, paginationOptions } from "./pages";

export function instanceCommand(cli: Cli) {
  const instance = new Command("instance").description("a capsule's instances in the environment");
  const scope = (capsuleId: string) => {
    const session = cli.session();
    return { session, req: { projectId: session.project, environmentId: session.environment, capsuleId } };
  };

  paginationOptions(instance.command("list"))
    .argument("<capsule>")
    .option("--include-deleted", "also instances that are gone")
    .action(async (capsuleId, opts) => {
      const { session, req } = scope(capsuleId);
      const res = await session.client(CapsuleService).listInstances({ ...req, pagination: pagination(opts), includeDeleted: opts.includeDeleted ?? false });
      printMessage(session.options.output, ListInstancesResponseSchema, res, () =>
        printTable(
          ["instance", "state", "rollout", "restarts", "age", "message"],
          res.instances.map((i) => [i.instanceId, State[i.state], String(i.rolloutId), i.restartCount, age(i.startedAt ?? i.createdAt), i.message || "-"]),
        ),
      );
    });

  instance
    .command("get")
    .argument("<capsule>")
    .argument("<instance>")
    .action(async (capsuleId, instanceId) => {
      const { session, req } = scope(capsuleId);
      const res = await session.client(CapsuleService).getInstanceStatus({ ...req, instanceId });
      printMessage(session.options.output, GetInstanceStatusResponseSchema, res, () => {
        const s = res.status;
        printFields([
          ["instance", s?.instanceId],
          ["rollout", String(s?.rolloutId ?? "-")],
          ["image", s?.image || "-"],
          ["created", when(s?.createdAt)],
          ...(["schedule", "preparing", "running", "deleted"] as const).map((name): [string, string] => {
            const info = s?.stages?.[name]?.info;
            return [name, info ? `${StageState[info.state]} (${when(info.updatedAt)})` : "-"];
          }),
        ]);
      });
    });

  instance
    .command("restart")
    .argument("<capsule>")
    .argument("<instance>")
    .action(async (capsuleId, instanceId) => {
      const { session, req } = scope(capsuleId);
      await session.client(CapsuleService).restartInstance({ ...req, instanceId });
      say(`Instance ${instanceId} restarting`);
    });

  instance
    .command("logs")
    .description("print the logs of one instance, or of all the capsule's instances")
    .argument("<capsule>")
    .argument("[instance]", "one instance (default: all of them, each line prefixed with its instance)")
    .option("-f, --follow", "keep printing new lines until interrupted")
    .option("-s, --since <duration>", "only lines from this long ago, e.g. 10m", duration)
    .option("-p, --previous-containers", "include the logs of earlier (crashed) containers")
    .action(async (capsuleId, instanceId, opts) => {
      const { session, req } = scope(capsuleId);
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      await printLogs(session, {
        ...req,
        instanceId,
        follow: opts.follow ?? false,
        sinceMs: opts.since,
        previousContainers: opts.previousContainers ?? false,
        prefix: instanceId === undefined,
        signal: stop.signal,
      });
    });

  instance
    .command("exec")
    .description("run a command in an instance; -it for an interactive terminal")
    .argument("<capsule>")
    .argument("<instance>")
    .argument("<command...>", "after --: the command and its arguments")
    .option("-i, --interactive", "send stdin to the command")
    .option("-t, --tty", "run the command in a terminal (raw mode, resize)")
    .addHelpText("after", "\nExample:\n  edgeplane capsule instance exec web web-3-0 -it -- sh\n\nThe command's exit code is edgeplane's.")
    .action(async (capsuleId, instanceId, command, opts) => {
      const { session, req } = scope(capsuleId);
      if (command.length === 0) throw usage("exec needs a command after --");
      if (opts.tty && !opts.interactive) throw usage("-t/--tty needs -i/--interactive");
      const code = await exec(session, { ...req, instanceId, command, interactive: opts.interactive ?? false, tty: opts.tty ?? false });
      // The remote command has said what went wrong; only its code is passed on.
      if (code !== 0) throw new CliError("", code);
    });

  return instance;
}

