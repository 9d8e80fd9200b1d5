/**
 * What the Docker driver runs besides capsule instances: command cron jobs, the developer
 * environment's machine and its automations, and the log URLs those serve. The connection
 * hands it the frames it owns (`handle`); everything it reports goes out through `send`.
 */
import type Docker from "dockerode";
import type { RunnerMessage, ServerMessage } from "../../../proto/frames/runner";
import { LogsServer, type LogsServerOptions } from "../logs-server";
import { TokenVerifier } from "../token-verifier";
import { Automations } from "./automations";
import { DevEnvironments } from "./dev-environments";
import { type CapsuleTemplate, CommandJobs } from "./jobs";

export interface DevWorkloadOptions {
  docker: Docker;
  /** Sends a frame; false when no connection is open (the frame is then lost, as reports are level-triggered). */
  send: (msg: RunnerMessage) => boolean;
  /** Labels every container and volume of this runner carries (its environment). */
  ownerLabels: Record<string, string>;
  /** The capsule driver's container template for a capsule, for its jobs. */
  template: (projectId: string, capsuleId: string) => CapsuleTemplate | undefined;
  /** The developer environment machine's image. */
  devImage: string;
  /** Host address the machine's ports are published on, and the host name in their URLs. */
  portBindAddress: string;
  portPublicHost: string;
  logs: LogsServerOptions;
  /** Grace between SIGTERM and SIGKILL for a service without a stop command. */
  serviceGraceMs?: number;
}

/** How long the automations get to stop before the machine does. */
const MACHINE_STOP_GRACE_MS = 10_000;

export class DevWorkloads {
  readonly jobs: CommandJobs;
  readonly environments: DevEnvironments;
  readonly automations: Automations;
  private readonly verifier: TokenVerifier;
  private readonly logs: LogsServer;

  constructor(o: DevWorkloadOptions) {
    const send = (m: RunnerMessage) => void o.send(m);
    this.verifier = new TokenVerifier(o.send);
    this.logs = new LogsServer(o.logs, this.verifier);
    this.jobs = new CommandJobs({ docker: o.docker, send: o.send, template: o.template, ownerLabels: o.ownerLabels });
    this.environments = new DevEnvironments({
      docker: o.docker,
      send,
      ownerLabels: o.ownerLabels,
      image: o.devImage,
      bindAddress: o.portBindAddress,
      publicHost: o.portPublicHost,
      // Within the 10 s the container itself is given: services get to run their stop commands.
      beforeStop: () => this.automations.stopAll(MACHINE_STOP_GRACE_MS),
    });
    this.automations = new Automations({
      send,
      machine: (ms) => this.environments.running(ms),
      publishLog: (path, output) => this.logs.publish(path, output),
      serviceGraceMs: o.serviceGraceMs,
    });
  }

  /** Starts the log server; resolves with its base URL. */
  start(): Promise<string> {
    return this.logs.start();
  }

  /** A connection said hello: job results that waited are sent, job containers of an earlier run adopted. */
  onConnected(): void {
    void this.jobs.onConnected();
  }

  async stop(): Promise<void> {
    await this.logs.stop();
  }

  /** The frame types `handle` takes. */
  static readonly types = [
    "job-run",
    "job-cancel",
    "environment-desired",
    "service-desired",
    "services-synced",
    "task-step-run",
    "task-step-stop",
    "token-verified",
  ] as const satisfies readonly ServerMessage["type"][];

  /** Handles `msg` if it is one of these workloads' frames; false for any other. */
  handle(msg: ServerMessage): boolean {
    switch (msg.type) {
      case "job-run":
        void this.jobs.run(msg);
        return true;
      case "job-cancel":
        void this.jobs.cancel(msg.executionId);
        return true;
      case "environment-desired":
        this.environments.desired(msg);
        return true;
      case "service-desired":
        this.automations.serviceDesired(msg);
        return true;
      case "services-synced":
        this.automations.servicesSynced(msg.serviceIds);
        return true;
      case "task-step-run":
        this.automations.stepRun(msg);
        return true;
      case "task-step-stop":
        this.automations.stepStop(msg);
        return true;
      case "token-verified":
        this.verifier.answered(msg);
        return true;
      default:
        return false;
    }
  }
}
