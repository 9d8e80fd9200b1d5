/**
 * The runner's options: each one a flag or an environment variable (the flag wins), checked
 * before anything connects, so a wrong option is one clear line and exit code 2.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";

/** What the runner was told to do. Durations are milliseconds. */
export interface RunnerOptions {
  url: URL;
  environment: string;
  clientId: string;
  clientSecret: string;
  /** A unix socket path, or a tcp:// / http:// address of a Docker Engine. */
  dockerHost: string;
  name: string;
  /** How often probes run. */
  probeIntervalMs: number;
  /** How long an old instance keeps serving after it stopped receiving new connections. */
  drainMs: number;
  /** How long an unknown labelled container is left alone before it is removed. */
  orphanGraceMs: number;
  /** How often metrics are sampled and sent. */
  metricsIntervalMs: number;
  /** The host address interfaces listen on (and a developer environment's ports are published on). */
  listenHost: string;
  /** The image of a developer environment's machine when its spec names none. */
  devImage: string;
  /** The host name in a developer environment's port URLs. */
  publicHost: string;
  /** Where the automations' log server listens, and the base URL clients reach it at. */
  logsListen: { host: string; port: number };
  logsUrl?: string;
}

/** A refusal to start: the message is the whole story, printed as one line. */
export class UsageError extends Error {}

const duration = (value: string): number => {
  const m = /^(\d+)(ms|s|m)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError("expected a duration such as 500ms, 5s or 2m");
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] ?? "ms"]!;
};

const url = (value: string): URL => {
  try {
    const u = new URL(value);
    if (u.protocol === "http:" || u.protocol === "https:") return u;
  } catch {
    // Reported below.
  }
  throw new InvalidArgumentError("expected an http:// or https:// URL, e.g. http://localhost:8787");
};

const hostPort = (value: string): { host: string; port: number } => {
  const m = /^(.+):(\d{1,5})$/.exec(value.trim());
  if (!m || Number(m[2]) > 65535) throw new InvalidArgumentError("expected host:port, e.g. 127.0.0.1:8870");
  return { host: m[1]!.replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]) };
};

/** The command line definition; `--help` prints it. */
export function program(): Command {
  return new Command("edgeplane-runner")
    .description("Runs what edgeplane deploys to one environment on a Docker host: capsules, their interfaces, logs, metrics and Execute, command cron jobs, and a developer environment's machine with its automations.")
    .addOption(new Option("--url <url>", "edgeplane's base URL").env("EDGEPLANE_URL").argParser(url).makeOptionMandatory())
    .addOption(new Option("--environment <id>", "the environment this runner serves").env("EDGEPLANE_ENVIRONMENT").makeOptionMandatory())
    .addOption(new Option("--client-id <id>", "the runner's service account client id").env("EDGEPLANE_CLIENT_ID").makeOptionMandatory())
    .addOption(new Option("--client-secret <secret>", "the runner's service account client secret").env("EDGEPLANE_CLIENT_SECRET").makeOptionMandatory())
    .addOption(
      new Option("--docker-host <address>", "the Docker Engine: a unix socket path or unix://, tcp:// or http:// address (default: $DOCKER_HOST, else /var/run/docker.sock)").env(
        "DOCKER_HOST",
      ),
    )
    .addOption(new Option("--name <name>", "the name the runner reports to edgeplane").env("EDGEPLANE_RUNNER_NAME"))
    .addOption(new Option("--probe-interval <duration>", "how often liveness and readiness probes run").env("EDGEPLANE_PROBE_INTERVAL").argParser(duration).default(2000, "2s"))
    .addOption(new Option("--drain <duration>", "how long a replaced instance keeps its open connections before it is removed").env("EDGEPLANE_DRAIN").argParser(duration).default(10_000, "10s"))
    .addOption(
      new Option("--orphan-grace <duration>", "how long a labelled container nobody wants is left alone before it is removed").env("EDGEPLANE_ORPHAN_GRACE").argParser(duration).default(60_000, "1m"),
    )
    .addOption(new Option("--metrics-interval <duration>", "how often container stats are sampled").env("EDGEPLANE_METRICS_INTERVAL").argParser(duration).default(15_000, "15s"))
    .addOption(new Option("--listen-host <address>", "the host address interfaces listen on").env("EDGEPLANE_LISTEN_HOST").default("127.0.0.1"))
    .addOption(
      new Option("--dev-image <image>", "the image of a developer environment's machine when its spec names none").env("EDGEPLANE_DEV_IMAGE").default("mcr.microsoft.com/devcontainers/base:ubuntu"),
    )
    .addOption(new Option("--public-host <host>", "the host name in a developer environment's port URLs (default: --listen-host)").env("EDGEPLANE_PUBLIC_HOST"))
    .addOption(
      new Option("--logs-listen <host:port>", "where the automations' log server listens (port 0: any free port)").env("EDGEPLANE_LOGS_LISTEN").argParser(hostPort).default({ host: "127.0.0.1", port: 0 }, "127.0.0.1:0"),
    )
    .addOption(new Option("--logs-url <url>", "the base URL clients reach the log server at (default: http://<--logs-listen>)").env("EDGEPLANE_LOGS_URL").argParser((v) => url(v).href))
    .helpOption("-h, --help", "show this help")
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
}

/** Reads the options from `argv` (without node and the script) and `env`. Throws UsageError. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): RunnerOptions | "help" {
  const cmd = program();
  // commander reads process.env for .env(); point it at the given environment.
  const saved = process.env;
  process.env = env;
  try {
    cmd.parse(argv, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.help") return "help";
      throw new UsageError(e.message.replace(/^error: /, ""));
    }
    throw e;
  } finally {
    process.env = saved;
  }
  const o = cmd.opts<{
    url: URL;
    environment: string;
    clientId: string;
    clientSecret: string;
    dockerHost?: string;
    name?: string;
    probeInterval: number;
    drain: number;
    orphanGrace: number;
    metricsInterval: number;
    listenHost: string;
    devImage: string;
    publicHost?: string;
    logsListen: { host: string; port: number };
    logsUrl?: string;
  }>();
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/i.test(o.environment)) throw new UsageError(`--environment ${JSON.stringify(o.environment)} is not an environment id`);
  return {
    url: o.url,
    environment: o.environment,
    clientId: o.clientId,
    clientSecret: o.clientSecret,
    dockerHost: o.dockerHost || "/var/run/docker.sock",
    name: o.name || `docker-${o.environment}`,
    probeIntervalMs: Math.max(100, o.probeInterval),
    drainMs: o.drain,
    orphanGraceMs: o.orphanGrace,
    metricsIntervalMs: Math.max(500, o.metricsInterval),
    listenHost: o.listenHost,
    devImage: o.devImage,
    publicHost: o.publicHost || o.listenHost,
    logsListen: o.logsListen,
    logsUrl: o.logsUrl,
  };
}
