/** `edgeplane environment create|list|update|delete`. */
import { create } from "@bufbuild/protobuf";
import { Command } from "@commander-js/extra-typings";
import { type Update, UpdateSchema } from "../../../proto/gen/api/v1/environment/environment_pb";
import { ListResponseSchema, Service as EnvironmentService } from "../../../proto/gen/api/v1/environment/service_pb";
import { printMessage, printTable } from "../output";
import { say } from "../terminal";
import type { Cli } from "./cli";
import { collect } from "./flags";
import { pagination, paginationOptions } from "./pages";

export function environmentCommand(cli: Cli) {
  const environment = new Command("environment").alias("env").description("environments: where capsules of projects run");

  environment
    .command("create")
    .argument("<environment>", "the environment's id (a DNS label)")
    .argument("[cluster]", "the cluster it runs on (default: the server's first)")
    .option("--add-project <project>", "a project active in it (repeatable)", collect)
    .option("--namespace-template <template>", "the namespace of each project, e.g. {{ .Project.Name }}")
    .option("--ephemeral", "an ephemeral environment")
    .option("--global", "active in every project")
    .action(async (id, cluster, opts) => {
      const initializers: Update[] = [
        ...(opts.addProject ?? []).map((p) => create(UpdateSchema, { field: { case: "addProject", value: p } })),
        ...(opts.global ? [create(UpdateSchema, { field: { case: "setGlobal", value: true } })] : []),
      ];
      await cli.session().client(EnvironmentService).create({
        environmentId: id,
        clusterId: cluster ?? "",
        initializers,
        namespaceTemplate: opts.namespaceTemplate ?? "",
        ephemeral: opts.ephemeral ?? false,
      });
      say(`Environment ${id} created`);
    });

  paginationOptions(environment.command("list"))
    .description("list the environments")
    .option("--exclude-ephemeral", "leave out ephemeral environments")
    .action(async (opts) => {
      const session = cli.session();
      const res = await session.client(EnvironmentService).list({ pagination: pagination(opts), excludeEphemeral: opts.excludeEphemeral ?? false, projectFilter: session.options.project ?? "" });
      printMessage(session.options.output, ListResponseSchema, res, () =>
        printTable(
          ["environment", "cluster", "projects", "flags"],
          res.environments.map((e) => [
            e.environmentId,
            e.clusterId,
            e.global ? "*" : e.activeProjects.join(", ") || "-",
            [e.default && "default", e.ephemeral && "ephemeral", e.global && "global"].filter(Boolean).join(", ") || "-",
          ]),
        ),
      );
    });

  environment
    .command("update")
    .argument("<environment>")
    .option("--add-project <project>", "make a project active in it (repeatable)", collect)
    .option("--remove-project <project>", "make a project inactive in it (repeatable)", collect)
    .option("--default", "make it the default environment")
    .option("--global", "make it active in every project")
    .option("--no-global", "make it active only in its projects")
    .action(async (id, opts) => {
      const updates: Update[] = [
        ...(opts.addProject ?? []).map((p) => create(UpdateSchema, { field: { case: "addProject", value: p } })),
        ...(opts.removeProject ?? []).map((p) => create(UpdateSchema, { field: { case: "removeProject", value: p } })),
        ...(opts.default ? [create(UpdateSchema, { field: { case: "default", value: true } })] : []),
        ...(opts.global !== undefined ? [create(UpdateSchema, { field: { case: "setGlobal", value: opts.global } })] : []),
      ];
      await cli.session().client(EnvironmentService).update({ environmentId: id, updates });
      say(`Environment ${id} updated`);
    });

  environment
    .command("delete")
    .argument("<environment>")
    .option("--force", "delete it even if capsules are deployed to it")
    .action(async (id, opts) => {
      await cli.session().client(EnvironmentService).delete({ environmentId: id, force: opts.force ?? false });
      say(`Environment ${id} deleted`);
    });

  return environment;
}
