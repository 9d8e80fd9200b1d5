/** `edgeplane project create|get|list|update|delete`. */
import { Command } from "@commander-js/extra-typings";
import { GetResponseSchema, ListResponseSchema, Service as ProjectService } from "../../../proto/gen/api/v1/project/service_pb";
import { age, printFields, printMessage, printTable, when } from "../output";
import { say } from "../terminal";
import type { Cli } from "./cli";
import { pagination, paginationOptions } from "./pages";

export function projectCommand(cli: Cli) {
  const project = new Command("project").description("projects: the capsules of one application or team");

  project
    .command("create")
    .argument("<project>", "the project's id (a DNS label)")
    .option("--name <name>", "a display name")
    .action(async (id, opts) => {
      const session = cli.session();
      await session.client(ProjectService).create({ projectId: id, initializers: opts.name ? [{ field: { case: "name", value: opts.name } }] : [] });
      say(`Project ${id} created`);
    });

  project
    .command("get")
    .argument("[project]", "the project (default: -P or the context's)")
    .action(async (id) => {
      const session = cli.session();
      const res = await session.client(ProjectService).get({ projectId: id ?? session.project });
      printMessage(session.options.output, GetResponseSchema, res, () =>
        printFields([
          ["project", res.project?.projectId],
          ["name", res.project?.name],
          ["created", when(res.project?.createdAt)],
          ["updated", when(res.project?.updatedAt)],
        ]),
      );
    });

  paginationOptions(project.command("list"))
    .description("list the projects")
    .action(async (opts) => {
      const session = cli.session();
      const res = await session.client(ProjectService).list({ pagination: pagination(opts) });
      printMessage(session.options.output, ListResponseSchema, res, () =>
        printTable(["project", "name", "age"], res.projects.map((p) => [p.projectId, p.name, age(p.createdAt)])),
      );
    });

  project
    .command("update")
    .argument("[project]", "the project (default: -P or the context's)")
    .requiredOption("--name <name>", "the new display name")
    .action(async (id, opts) => {
      const session = cli.session();
      const projectId = id ?? session.project;
      await session.client(ProjectService).update({ projectId, updates: [{ field: { case: "name", value: opts.name } }] });
      say(`Project ${projectId} updated`);
    });

  project
    .command("delete")
    .argument("<project>")
    .action(async (id) => {
      await cli.session().client(ProjectService).delete({ projectId: id });
      say(`Project ${id} deleted`);
    });

  return project;
}
