/**
 * `edgeplane`: Rig's command line against edgeplane. Builds the command tree, runs the command
 * and turns every failure into one line on stderr and an exit code (exit.ts).
 */
import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { authCommand } from "./commands/auth";
import { capsuleCommand } from "./commands/capsule";
import { completionCommand } from "./commands/completion";
import { configCommand } from "./commands/config";
import { devEnvCommands } from "./commands/dev-env";
import { environmentCommand } from "./commands/environment";
import { identityCommands } from "./commands/identity";
import { projectCommand } from "./commands/project";
import type { Cli } from "./commands/cli";
import { describe, exitCode, unwrap } from "./failure";
import { CliError, exitCodeHelp } from "./exit";
import { Session } from "./session";
import { warn } from "./terminal";

/** The program with every command; `cli.session()` reads the global flags once they are parsed. */
export function program(): Command {
  const root = new Command("edgeplane")
    .description("edgeplane's command line: projects, environments, capsules, deploys and developer environments")
    .version("0.1.0")
    .addOption(new Option("-H, --host <url>", "the edgeplane server (default: the context's, or $EDGEPLANE_HOST)"))
    .addOption(new Option("-P, --project <project>", "the project (default: the context's)"))
    .addOption(new Option("-E, --environment <environment>", "the environment (default: the context's)"))
    .addOption(new Option("-C, --context <context>", "the context to use instead of the current one"))
    .addOption(new Option("-o, --output <format>", "output format").choices(["pretty", "json", "yaml"] as const).default("pretty" as const))
    .addOption(new Option("-I, --non-interactive", "never ask questions"))
    .addHelpText("after", `\n${exitCodeHelp}`)
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  let session: Session | undefined;
  const cli: Cli = { session: () => (session ??= new Session(root.opts())) };
  root.addCommand(authCommand(cli));
  root.addCommand(configCommand(cli));
  root.addCommand(projectCommand(cli));
  root.addCommand(environmentCommand(cli));
  root.addCommand(capsuleCommand(cli));
  for (const c of identityCommands(cli)) root.addCommand(c);
  for (const c of devEnvCommands(cli)) root.addCommand(c);
  root.addCommand(completionCommand(root));
  inherit(root);
  return root;
}

/** Every subcommand ends with an exception rather than process.exit, and prints help after a usage error. */
function inherit(command: Command): void {
  for (const sub of command.commands) {
    sub.exitOverride().showHelpAfterError("(add --help for usage)");
    inherit(sub as Command);
  }
}

/** Runs the CLI with `argv` (without node and the script) and exits with its code. */
export async function main(argv: string[]): Promise<never> {
  let code = 0;
  try {
    await program().parseAsync(argv, { from: "user" });
  } catch (thrown) {
    const e = unwrap(thrown);
    if (!(e instanceof CommanderError) && !(e instanceof CliError && e.message === "")) warn(describe(e));
    code = exitCode(e);
  }
  process.exit(code);
}
