/** `edgeplane config …`: contexts (a server with its project, environment and login), as Rig's `config` has. */
import { Command } from "@commander-js/extra-typings";
import { Service as EnvironmentService } from "../../../proto/gen/api/v1/environment/service_pb";
import { Service as ProjectService } from "../../../proto/gen/api/v1/project/service_pb";
import { type Config, findContext, putContext } from "../config";
import { CliError, ExitCode, usage } from "../exit";
import { printFields, printJson, printTable } from "../output";
import { ask, color, say } from "../terminal";
import type { Cli } from "./cli";

export function configCommand(cli: Cli) {
  const config = new Command("config").description("contexts: which server, project and environment commands use");

  config
    .command("init")
    .description("create a context for a server (-H) and make it the current one")
    .argument("[name]", "the context's name", "default")
    .action(async (name) => {
      const session = cli.session();
      const host = session.options.host ?? session.env.EDGEPLANE_HOST ?? (session.interactive ? await ask("Server URL (e.g. http://localhost:8787)") : undefined);
      if (!host) throw usage("config init needs the server: -H/--host <url> or $EDGEPLANE_HOST");
      try {
        new URL(host);
      } catch {
        throw usage(`-H/--host: ${host} is not a URL`);
      }
      putContext(session.config, { name, host: host.replace(/\/+$/, ""), project: session.options.project, environment: session.options.environment });
      session.config.currentContext = name;
      session.save();
      say(`Context ${name} created for ${host}; it is the current context`);
    });

  config
    .command("use-context")
    .description("make a context the current one")
    .argument("<name>")
    .action((name) => {
      const session = cli.session();
      if (!findContext(session.config, name)) throw usage(`no context named "${name}"; contexts: ${names(session.config) || "none"}`);
      session.config.currentContext = name;
      session.save();
      say(`Switched to context ${name}`);
    });

  config
    .command("use-project")
    .description("make a project the context's project (it must exist)")
    .argument("<project>")
    .action(async (project) => {
      const session = cli.session();
      const context = currentOrFail(session.context);
      await session.client(ProjectService).get({ projectId: project });
      context.project = project;
      session.save();
      say(`Context ${context.name} now uses project ${project}`);
    });

  config
    .command("use-environment")
    .description("make an environment the context's environment (it must exist)")
    .argument("<environment>")
    .action(async (environment) => {
      const session = cli.session();
      const context = currentOrFail(session.context);
      const { environments } = await session.client(EnvironmentService).list({});
      if (!environments.some((e) => e.environmentId === environment)) {
        throw new CliError(`not_found: no environment "${environment}"`, ExitCode.refused);
      }
      context.environment = environment;
      session.save();
      say(`Context ${context.name} now uses environment ${environment}`);
    });

  config
    .command("current-context")
    .description("show the current context")
    .action(() => {
      const session = cli.session();
      const context = currentOrFail(session.context);
      const view = { name: context.name, host: context.host, project: context.project, environment: context.environment, loggedIn: Boolean(context.auth) };
      if (session.options.output !== "pretty") return printJson(session.options.output, view);
      printFields([
        ["context", context.name],
        ["host", context.host],
        ["project", context.project ?? "-"],
        ["environment", context.environment ?? "-"],
        ["logged in", context.auth ? (context.auth.subject ?? "yes") : "no"],
      ]);
    });

  config
    .command("view-config")
    .description("show every context (tokens hidden)")
    .action(() => {
      const session = cli.session();
      const contexts = session.config.contexts.map(({ auth, ...c }) => ({ ...c, ...(auth ? { auth: { subject: auth.subject, accessToken: "<hidden>", refreshToken: "<hidden>" } } : {}) }));
      if (session.options.output !== "pretty") return printJson(session.options.output, { currentContext: session.config.currentContext, contexts });
      say(color.dim(`# ${session.configFile}`));
      printTable(
        ["current", "name", "host", "project", "environment", "logged in"],
        session.config.contexts.map((c) => [c.name === session.config.currentContext ? "*" : "", c.name, c.host, c.project ?? "-", c.environment ?? "-", c.auth ? "yes" : "no"]),
      );
    });

  config
    .command("delete-context")
    .description("forget a context and its tokens")
    .argument("<name>")
    .action((name) => {
      const session = cli.session();
      if (!findContext(session.config, name)) throw usage(`no context named "${name}"`);
      session.config.contexts = session.config.contexts.filter((c) => c.name !== name);
      if (session.config.currentContext === name) session.config.currentContext = undefined;
      session.save();
      say(`Context ${name} deleted`);
    });

  return config;
}

const names = (config: Config) => config.contexts.map((c) => c.name).join(", ");

function currentOrFail<T>(context: T | undefined): T {
  if (!context) throw usage("no current context: run `edgeplane config init` or `edgeplane auth login` first");
  return context;
}
