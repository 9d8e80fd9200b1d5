/**
 * Developer environments (`gitpod.v1.EnvironmentService`) and their automations
 * (`EnvironmentAutomationService`): `dev-env …`, `automations apply`, `service …`, `task run`.
 * Long work (starting, stopping, a task) is followed on the environment's event stream.
 */
import { readFileSync } from "node:fs";
import { fromJson } from "@bufbuild/protobuf";
import { Command } from "@commander-js/extra-typings";
import { parse } from "yaml";
import { AutomationsFileSchema, EnvironmentAutomationService as AutomationService, ListServicesResponseSchema, ListTasksResponseSchema, ServicePhase, TaskExecutionPhase, UpsertAutomationsFileResponseSchema } from "../../../proto/gen/gitpod/v1/environment_automation_pb";
import { CreateEnvironmentResponseSchema, EnvironmentPhase, EnvironmentService, GetEnvironmentResponseSchema, ListEnvironmentsResponseSchema } from "../../../proto/gen/gitpod/v1/environment_pb";
import { follow } from "../events";
import { CliError, ExitCode, usage } from "../exit";
import { age, printFields, printMessage, printTable } from "../output";
import type { Session } from "../session";
import { color, say } from "../terminal";
import type { Cli } from "./cli";

const phase = (p: EnvironmentPhase) => EnvironmentPhase[p] ?? String(p);

/** Follows the environment's stream until `done` (asked after each event) says it is over. */
async function waitOn(session: Session, environmentId: string, done: () => Promise<boolean>): Promise<void> {
  if (await done()) return;
  await follow(session, { ticketPath: `/environments/${environmentId}/events/tickets`, onEvent: () => done() });
}

/** Waits until the environment reaches `want`; a failure message or another end phase is an error. */
async function waitForPhase(session: Session, id: string, want: EnvironmentPhase): Promise<void> {
  const environments = session.client(EnvironmentService);
  let last: EnvironmentPhase | undefined;
  let failure: string | undefined;
  await waitOn(session, id, async () => {
    const { environment } = await environments.getEnvironment({ environmentId: id });
    const now = environment?.status?.phase ?? EnvironmentPhase.UNSPECIFIED;
    if (now !== last) say(`  ${color.cyan("•")} ${phase(now)}${environment?.status?.warningMessage.length ? ` — ${environment.status.warningMessage.join("; ")}` : ""}`);
    last = now;
    failure = environment?.status?.failureMessage.join("; ") || undefined;
    const settled = now === EnvironmentPhase.STOPPED || now === EnvironmentPhase.DELETED || now === EnvironmentPhase.RUNNING;
    return now === want || (settled && failure !== undefined);
  });
  if (last !== want) throw new CliError(`environment ${id} is ${phase(last ?? EnvironmentPhase.UNSPECIFIED)}${failure ? `: ${failure}` : ""}`, ExitCode.rolloutFailed);
  say(color.green(`✔ environment ${id} is ${phase(want)}`));
}

function devEnvCommand(cli: Cli) {
  const devEnv = new Command("dev-env").description("developer environments (Gitpod's API)");

  devEnv.command("list").action(async () => {
    const session = cli.session();
    const res = await session.client(EnvironmentService).listEnvironments({});
    printMessage(session.options.output, ListEnvironmentsResponseSchema, res, () =>
      printTable(["id", "name", "phase", "age"], res.environments.map((e) => [e.id, e.metadata?.name ?? "-", phase(e.status?.phase ?? 0), age(e.metadata?.createdAt)])),
    );
  });

  devEnv
    .command("create")
    .option("--name <name>")
    .option("--stopped", "create it without starting it")
    .option("--no-wait", "return once it is created")
    .action(async (opts) => {
      const session = cli.session();
      const res = await session.client(EnvironmentService).createEnvironment({
        name: opts.name,
        spec: { desiredPhase: opts.stopped ? EnvironmentPhase.STOPPED : EnvironmentPhase.RUNNING },
      });
      const id = res.environment?.id ?? "";
      printMessage(session.options.output, CreateEnvironmentResponseSchema, res, () => say(`Environment ${id} created`));
      if (opts.wait && !opts.stopped && session.options.output === "pretty") await waitForPhase(session, id, EnvironmentPhase.RUNNING);
    });

  devEnv
    .command("get")
    .argument("<id>")
    .action(async (id) => {
      const session = cli.session();
      const res = await session.client(EnvironmentService).getEnvironment({ environmentId: id });
      printMessage(session.options.output, GetEnvironmentResponseSchema, res, () =>
        printFields([
          ["id", res.environment?.id],
          ["name", res.environment?.metadata?.name],
          ["phase", phase(res.environment?.status?.phase ?? 0)],
          ["ssh", res.environment?.status?.environmentUrls?.ssh?.url || "-"],
          ["logs", res.environment?.status?.environmentUrls?.logs || "-"],
        ]),
      );
    });

  for (const [name, rpc, want] of [
    ["start", "startEnvironment", EnvironmentPhase.RUNNING],
    ["stop", "stopEnvironment", EnvironmentPhase.STOPPED],
    ["delete", "deleteEnvironment", EnvironmentPhase.DELETED],
  ] as const) {
    devEnv
      .command(name)
      .argument("<id>")
      .option("--no-wait", "return at once")
      .action(async (id, opts) => {
        const session = cli.session();
        await session.client(EnvironmentService)[rpc]({ environmentId: id });
        say(`Environment ${id}: ${name} requested`);
        if (opts.wait) await waitForPhase(session, id, want);
      });
  }

  devEnv
    .command("logs")
    .description("where the environment's logs are served (by its runner), with a token to read them")
    .argument("<id>")
    .action(async (id) => {
      const session = cli.session();
      const environments = session.client(EnvironmentService);
      const { environment } = await environments.getEnvironment({ environmentId: id });
      const url = environment?.status?.environmentUrls?.logs;
      if (!url) throw new CliError(`failed_precondition: environment ${id} has no logs yet: its runner reports where they are once it runs`, ExitCode.refused);
      const { accessToken } = await environments.createEnvironmentLogsToken({ environmentId: id });
      printFields([["logs", url], ["token", accessToken]]);
    });

  return devEnv;
}

function readAutomations(path: string) {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw usage(`cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
  try {
    return fromJson(AutomationsFileSchema, parse(text) ?? {});
  } catch (e) {
    throw usage(`${path} is not an automations file: ${e instanceof Error ? e.message : e}`);
  }
}

function automationsCommands(cli: Cli): Command[] {
  const automations = new Command("automations").description("a developer environment's services and tasks, from an automations.yaml");
  automations
    .command("apply")
    .argument("<file>", "automations.yaml")
    .argument("<environment-id>")
    .action(async (file, environmentId) => {
      const session = cli.session();
      const res = await session.client(AutomationService).upsertAutomationsFile({ environmentId, automationsFile: readAutomations(file) });
      printMessage(session.options.output, UpsertAutomationsFileResponseSchema, res, () => say(`Applied ${file}: ${res.updatedServiceIds.length} service(s), ${res.updatedTaskIds.length} task(s) updated`));
    });

  const service = new Command("service").description("a developer environment's services");
  service
    .command("list")
    .argument("<environment-id>")
    .action(async (environmentId) => {
      const session = cli.session();
      const res = await session.client(AutomationService).listServices({ filter: { environmentIds: [environmentId] } });
      printMessage(session.options.output, ListServicesResponseSchema, res, () =>
        printTable(["reference", "id", "phase"], res.services.map((s) => [s.metadata?.reference ?? "-", s.id, ServicePhase[s.status?.phase ?? 0] ?? "-"])),
      );
    });
  for (const name of ["start", "stop"] as const) {
    service
      .command(name)
      .argument("<environment-id>")
      .argument("<reference>", "the service's name in the automations file")
      .action(async (environmentId, reference) => {
        const session = cli.session();
        const automation = session.client(AutomationService);
        const { services } = await automation.listServices({ filter: { environmentIds: [environmentId], references: [reference] } });
        const found = services[0];
        if (!found) throw new CliError(`not_found: no service "${reference}" in environment ${environmentId}`, ExitCode.refused);
        await (name === "start" ? automation.startService({ id: found.id }) : automation.stopService({ id: found.id }));
        say(`Service ${reference}: ${name} requested`);
      });
  }

  const task = new Command("task").description("a developer environment's tasks");
  task
    .command("list")
    .argument("<environment-id>")
    .action(async (environmentId) => {
      const session = cli.session();
      const res = await session.client(AutomationService).listTasks({ filter: { environmentIds: [environmentId] } });
      printMessage(session.options.output, ListTasksResponseSchema, res, () => printTable(["reference", "id", "command"], res.tasks.map((t) => [t.metadata?.reference ?? "-", t.id, t.spec?.command ?? "-"])));
    });
  task
    .command("run")
    .description("start a task and wait for its outcome (exit 1 when it fails)")
    .argument("<environment-id>")
    .argument("<reference>", "the task's name in the automations file")
    .action(async (environmentId, reference) => {
      const session = cli.session();
      const automation = session.client(AutomationService);
      const { tasks } = await automation.listTasks({ filter: { environmentIds: [environmentId], references: [reference] } });
      const found = tasks[0];
      if (!found) throw new CliError(`not_found: no task "${reference}" in environment ${environmentId}`, ExitCode.refused);
      const { taskExecution } = await automation.startTask({ id: found.id });
      const executionId = taskExecution?.id ?? "";
      say(`Task ${reference} started: execution ${executionId}`);
      const shown = new Map<string, TaskExecutionPhase>();
      let end: TaskExecutionPhase | undefined;
      let failure = "";
      await waitOn(session, environmentId, async () => {
        const status = (await automation.getTaskExecution({ id: executionId })).taskExecution?.status;
        for (const step of status?.steps ?? []) {
          if (shown.get(step.id) === step.phase) continue;
          shown.set(step.id, step.phase);
          say(`  ${step.phase === TaskExecutionPhase.FAILED ? color.red("✖") : step.phase === TaskExecutionPhase.SUCCEEDED ? color.green("✔") : color.cyan("•")} step ${step.id}: ${TaskExecutionPhase[step.phase]}${step.failureMessage ? ` — ${step.failureMessage}` : ""}`);
        }
        const p = status?.phase ?? TaskExecutionPhase.UNSPECIFIED;
        failure = status?.failureMessage ?? "";
        if (p === TaskExecutionPhase.SUCCEEDED || p === TaskExecutionPhase.FAILED || p === TaskExecutionPhase.STOPPED) end = p;
        return end !== undefined;
      });
      if (end !== TaskExecutionPhase.SUCCEEDED) throw new CliError(`task ${reference} ${end === TaskExecutionPhase.STOPPED ? "was stopped" : "failed"}${failure ? `: ${failure}` : ""}`, ExitCode.rolloutFailed);
      say(color.green(`✔ task ${reference} succeeded`));
    });

  return [automations, service, task];
}

export function devEnvCommands(cli: Cli): Command[] {
  return [devEnvCommand(cli), ...automationsCommands(cli)];
}
