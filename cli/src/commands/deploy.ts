/**
 * `edgeplane capsule deploy`: Rig's deploy flags turned into Changes, a dry run that prints the
 * resulting configuration, the question to abort a rollout in progress, and waiting for the
 * rollout with live progress (rollout-watch.ts).
 */
import { readFileSync } from "node:fs";
import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { Command } from "@commander-js/extra-typings";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Change, ChangeSchema } from "../../../proto/gen/api/v1/capsule/change_pb";
import { RolloutConfigSchema } from "../../../proto/gen/api/v1/capsule/rollout_pb";
import { type DeployRequest, DeployRequestSchema, DeployResponseSchema, Service as CapsuleService } from "../../../proto/gen/api/v1/capsule/service_pb";
import { stringify } from "yaml";
import { usage } from "../exit";
import { printMessage } from "../output";
import { waitForRollout } from "../rollout-watch";
import type { Session } from "../session";
import { color, confirm, say } from "../terminal";
import type { Cli } from "./cli";
import { collect, count, duration, keyValues, rolloutId } from "./flags";

/** `--set-config-file path=/in/container,src=./on/disk[,secret]` → a set_config_file Change. */
export function configFileChange(spec: string): Change {
  const fields = new Map<string, string>();
  for (const part of spec.split(",")) {
    const i = part.indexOf("=");
    fields.set(i === -1 ? part : part.slice(0, i), i === -1 ? "true" : part.slice(i + 1));
  }
  const path = fields.get("path");
  const src = fields.get("src");
  if (!path || !src) throw usage(`--set-config-file ${spec}: give path=<path in the container>,src=<file on disk>`);
  let content: Buffer;
  try {
    content = readFileSync(src);
  } catch (e) {
    throw usage(`--set-config-file: cannot read ${src}: ${e instanceof Error ? e.message : e}`);
  }
  return create(ChangeSchema, { field: { case: "setConfigFile", value: { path, content, isSecret: fields.get("secret") === "true" } } });
}

/** The rollout id named by the API's "rollout N of capsule C is in progress" refusal. */
export function rolloutInProgress(e: unknown): bigint | undefined {
  if (!(e instanceof ConnectError) || e.code !== Code.FailedPrecondition) return undefined;
  const m = /rollout (\d+) of capsule \S+ is in progress/.exec(e.rawMessage);
  return m ? BigInt(m[1]!) : undefined;
}

/** Deploys; a rollout in progress is aborted (force) when the person at the terminal says so. */
export async function deployAsking(session: Session, req: DeployRequest) {
  const capsules = session.client(CapsuleService);
  try {
    return await capsules.deploy(req);
  } catch (e) {
    const running = rolloutInProgress(e);
    if (running === undefined || req.force || !session.interactive) throw e;
    if (!(await confirm(`Rollout ${running} of ${req.capsuleId} is in progress. Abort it and deploy?`))) throw e;
    return capsules.deploy({ ...req, force: true });
  }
}

export function deployCommand(cli: Cli) {
  return new Command("deploy")
    .description("deploy changes to a capsule in the environment, and wait for the rollout")
    .argument("<capsule>")
    .argument("[command...]", "after --: the command and arguments the capsule runs")
    .option("-i, --image <image>", "the image to run (added to the capsule's images)")
    .option("-r, --replicas <n>", "the number of instances", count)
    .option("-e, --set-env-var <KEY=VALUE>", "set an environment variable (repeatable)", keyValues)
    .option("--rm-env-var <KEY>", "remove an environment variable (repeatable)", collect)
    .option("--set-config-file <path=…,src=…>", "add a config file from disk: path in the container, src on disk, ,secret for a secret (repeatable)", collect)
    .option("--rm-config-file <path>", "remove a config file (repeatable)", collect)
    .option("-m, --message <message>", "what the rollout is for")
    .option("--current-rollout <id>", "deploy only if this is still the capsule's current rollout", rolloutId)
    .option("--force", "abort a rollout in progress instead of failing")
    .option("--dry-run", "print the resulting configuration and resources; deploy nothing")
    .option("--no-wait", "return once the rollout is created")
    .option("-t, --timeout <duration>", "fail (and roll back) when the rollout is not ready by then, e.g. 5m", duration)
    .option("--no-rollback", "with --timeout: leave a timed-out rollout as it is")
    .addHelpText("after", "\nExamples:\n  edgeplane capsule deploy web -i nginx:1.27 -r 2 -e MODE=prod\n  edgeplane capsule deploy web --set-config-file path=/etc/app.yaml,src=./app.yaml -- /app --config /etc/app.yaml")
    .action(async (capsuleId, command, opts) => {
      const session = cli.session();
      const changes: Change[] = [];
      const change = (field: MessageInitShape<typeof ChangeSchema>["field"]) => changes.push(create(ChangeSchema, { field }));
      if (opts.image) change({ case: "addImage", value: { image: opts.image } });
      if (opts.replicas !== undefined) change({ case: "replicas", value: opts.replicas });
      for (const [name, value] of opts.setEnvVar ?? []) change({ case: "setEnvironmentVariable", value: { name, value } });
      for (const name of opts.rmEnvVar ?? []) change({ case: "removeEnvironmentVariable", value: name });
      for (const spec of opts.setConfigFile ?? []) changes.push(configFileChange(spec));
      for (const path of opts.rmConfigFile ?? []) change({ case: "removeConfigFile", value: path });
      if (command.length > 0) change({ case: "commandArguments", value: { command: command[0]!, args: command.slice(1) } });
      if (changes.length === 0) throw usage("nothing to deploy: give an image (-i), replicas (-r), variables (-e), config files or a command");

      const projectId = session.project;
      const environmentId = session.environment;
      const req = create(DeployRequestSchema, {
        projectId,
        environmentId,
        capsuleId,
        changes,
        force: opts.force ?? false,
        dryRun: opts.dryRun ?? false,
        message: opts.message ?? "",
        currentRolloutId: opts.currentRollout ?? 0n,
      });
      const capsules = session.client(CapsuleService);
      // The rollout a timed-out deploy rolls back to: the newest one before it.
      const before = opts.dryRun ? undefined : (await capsules.listRollouts({ projectId, capsuleId, environmentId, pagination: { limit: 1 } })).rollouts[0];
      const res = await deployAsking(session, req);

      if (opts.dryRun) {
        return printMessage(session.options.output, DeployResponseSchema, res, () => {
          say(color.bold("# the rollout's configuration"));
          process.stdout.write(stringify(res.rolloutConfig ? toJson(RolloutConfigSchema, res.rolloutConfig) : {}));
          for (const [name, yaml] of Object.entries(res.resourceYaml).sort()) {
            say(color.bold(`---\n# ${name}`));
            process.stdout.write(yaml.endsWith("\n") ? yaml : `${yaml}\n`);
          }
        });
      }
      if (session.options.output !== "pretty") printMessage(session.options.output, DeployResponseSchema, res, () => {});
      else say(`Deploying ${capsuleId} to ${environmentId} in project ${projectId}: rollout ${res.rolloutId}`);
      if (!opts.wait) return;
      // With -o json|yaml the output is the response alone; the exit code still says how the rollout went.
      const quiet = session.options.output !== "pretty";
      await waitForRollout(session, { projectId, capsuleId, environmentId, rolloutId: res.rolloutId }, { timeoutMs: opts.timeout ?? 0, rollbackTo: opts.rollback ? before?.rolloutId : undefined, quiet });
    });
}

