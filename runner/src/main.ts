/**
 * edgeplane-runner: serves one environment of edgeplane on a Docker host. Every refusal to
 * start (a wrong option, edgeplane or Docker unreachable, credentials refused) is one line on
 * stderr and a non-zero exit.
 */
import { Connection } from "./connection";
import { DevWorkloads } from "./docker/dev-workloads";
import { DockerDriver } from "./docker/driver";
import { LABEL } from "./docker/labels";
import { Refused, Session } from "./edgeplane";
import { Agent } from "./agent";
import { log, reason } from "./log";
import { parseOptions, type RunnerOptions, UsageError } from "./options";
import { VERSION } from "./version";

async function run(o: RunnerOptions): Promise<number> {
  const driver = new DockerDriver({
    dockerHost: o.dockerHost,
    environmentId: o.environment,
    probeIntervalMs: o.probeIntervalMs,
    drainMs: o.drainMs,
    orphanGraceMs: o.orphanGraceMs,
    metricsIntervalMs: o.metricsIntervalMs,
    listenHost: o.listenHost,
  });
  log("info", `edgeplane-runner ${VERSION}: ${await driver.ping()} at ${o.dockerHost}`);
  const session = new Session(o.url, { clientId: o.clientId, clientSecret: o.clientSecret });
  try {
    await session.accessToken();
  } catch (e) {
    if (e instanceof Refused) throw e;
    throw new Error(`cannot reach edgeplane at ${o.url.origin}: ${reason(e)}`);
  }
  let connection: Connection | null = null;
  const agent = new Agent(driver, (msg) => connection?.send(msg) ?? false);
  connection = new Connection({
    session,
    environmentId: o.environment,
    name: o.name,
    version: VERSION,
    onMessage: (m) => agent.onMessage(m),
    onConnected: () => {
      agent.onConnected();
      workloads.onConnected();
    },
  });
  const workloads = new DevWorkloads({
    docker: driver.docker,
    send: (msg) => connection?.send(msg) ?? false,
    ownerLabels: { [LABEL.managed]: "true", [LABEL.environment]: o.environment },
    template: (projectId, capsuleId) => driver.template({ projectId, capsuleId }),
    devImage: o.devImage,
    portBindAddress: o.listenHost,
    portPublicHost: o.publicHost,
    logs: { ...o.logsListen, publicUrl: o.logsUrl },
  });
  for (const type of DevWorkloads.types) agent.extra.set(type, (m) => workloads.handle(m));
  await driver.start(agent);
  log("info", `automation logs served at ${await workloads.start()}`);
  const stop = () => connection.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const why = await connection.run();
  await workloads.stop();
  await driver.close();
  if (why === "stopped") {
    log("info", "stopped; the containers keep running and are adopted when the runner starts again");
    return 0;
  }
  log("error", `stopping for good: ${why}`);
  return 1;
}

async function main(): Promise<void> {
  let options: RunnerOptions | "help";
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`edgeplane-runner: ${reason(e)} (see --help)\n`);
    process.exit(2);
  }
  // commander has printed the help already.
  if (options === "help") process.exit(0);
  try {
    process.exit(await run(options));
  } catch (e) {
    process.stderr.write(`edgeplane-runner: ${reason(e)}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
}

void main();
