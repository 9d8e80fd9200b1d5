/**
 * Command cron jobs on Docker: each `job-run` is one attempt, run as a one-off container of
 * the capsule's image and configuration (as Rig runs them as Kubernetes CronJob pods), with
 * the job's command and arguments in place of the image's entrypoint and command. The exit
 * code is the result (`job-result`); the output goes to the capsule's logs (`log` frames,
 * under an instance id of its own) and its tail into the result's message. The container is
 * removed once its result is sent, or at once on `job-cancel` or when `timeoutMs` runs out.
 * Containers carry their execution in labels, so a restarted runner reports the attempts
 * that ran or ended while it was away instead of losing them.
 */
import type Docker from "dockerode";
import type { LogLine, RunnerMessage, ServerMessage } from "../../../proto/frames/runner";
import { type ContainerSpec, putConfigFiles } from "./container-spec";

type JobRun = Extract<ServerMessage, { type: "job-run" }>;

/**
 * Labels of job containers. Project and capsule have keys of their own: the capsule driver
 * takes every container with its `project` and `capsule` labels for an instance.
 */
export const JOB_LABELS = {
  kind: "dev.edgeplane.kind",
  project: "dev.edgeplane.job-project",
  capsule: "dev.edgeplane.job-capsule",
  execution: "dev.edgeplane.job-execution",
  job: "dev.edgeplane.job-name",
  instance: "dev.edgeplane.job-instance",
} as const;
export const JOB_KIND = "job";

/** What a container of the capsule is made from: its desired rollout's container spec. */
export interface CapsuleTemplate {
  rolloutId: number;
  spec: ContainerSpec;
}

export interface JobDeps {
  docker: Docker;
  /** False when no connection is open. */
  send: (msg: RunnerMessage) => boolean;
  /** The capsule's container template, if the runner holds a desired rollout of it. */
  template: (projectId: string, capsuleId: string) => CapsuleTemplate | undefined;
  /** Labels that mark containers of this runner (its environment), added to every job container. */
  ownerLabels: Record<string, string>;
}

/** Characters of output quoted in a result's message. */
const TAIL_CHARS = 400;
/** Log lines are sent in batches of at most this many, at most this long after the first. */
const BATCH_LINES = 100;
const BATCH_MS = 250;

interface Attempt {
  container: Docker.Container;
  /** Set once the runner itself ended it (cancel or timeout): nothing more is reported. */
  abandoned: boolean;
  timer?: NodeJS.Timeout;
}

/** A Docker name from parts the user chose: only [a-zA-Z0-9_.-], not starting with a separator. */
const nameSafe = (s: string) => s.replace(/[^a-zA-Z0-9_.-]+/g, "-").replace(/^[-_.]+/, "").slice(0, 40) || "x";

export class CommandJobs {
  private readonly attempts = new Map<string, Attempt>();
  /** Results that found no connection open: sent once one is (the server ignores late ones). */
  private readonly unsent = new Map<string, Extract<RunnerMessage, { type: "job-result" }>>();

  constructor(private readonly deps: JobDeps) {}

  /** `job-run`: starts one attempt; a second `job-run` while one runs is the same attempt. */
  async run(msg: JobRun): Promise<void> {
    if (this.attempts.has(msg.executionId)) return;
    const template = this.deps.template(msg.projectId, msg.capsuleId);
    if (!template) {
      return this.result(msg.executionId, -1, `capsule ${msg.capsuleId} has no rollout on this runner, so there is no image to run the job in`);
    }
    const instanceId = `${nameSafe(msg.capsuleId)}-job-${nameSafe(msg.jobName)}-${msg.executionId.slice(0, 8)}`;
    const { options, files } = template.spec;
    const labels = {
      ...this.deps.ownerLabels,
      [JOB_LABELS.kind]: JOB_KIND,
      [JOB_LABELS.project]: msg.projectId,
      [JOB_LABELS.capsule]: msg.capsuleId,
      [JOB_LABELS.execution]: msg.executionId,
      [JOB_LABELS.job]: msg.jobName,
      [JOB_LABELS.instance]: instanceId,
    };
    let container: Docker.Container;
    let output: NodeJS.ReadableStream;
    try {
      container = await this.deps.docker.createContainer({
        ...options,
        name: `${instanceId}-${Date.now().toString(36)}`,
        Labels: labels,
        Entrypoint: [msg.command],
        Cmd: msg.args,
        Tty: false,
        AttachStdout: false,
        AttachStderr: false,
        // A job attempt runs once: retries are the server's (max_retries), not Docker's.
        HostConfig: { ...options.HostConfig, RestartPolicy: { Name: "no" }, AutoRemove: false },
      });
      await putConfigFiles(container, files);
      // Attached before it starts, as `docker run` does: a logs stream that follows a container
      // which exits at once may end before its last lines arrive, and a job's output is its result.
      output = await container.attach({ stream: true, stdout: true, stderr: true });
      await container.start();
    } catch (err) {
      return this.result(msg.executionId, -1, `the job's container could not start: ${reason(err)}`);
    }
    const attempt: Attempt = { container, abandoned: false };
    this.attempts.set(msg.executionId, attempt);
    if (msg.timeoutMs !== undefined && msg.timeoutMs > 0) {
      attempt.timer = setTimeout(() => void this.abandon(msg.executionId, "timeout"), msg.timeoutMs);
    }
    void this.follow(msg.executionId, attempt, { projectId: msg.projectId, capsuleId: msg.capsuleId, instanceId }, output);
  }

  /** `job-cancel`: the execution ended on the server; the attempt is killed and removed, and not reported. */
  async cancel(executionId: string): Promise<void> {
    await this.abandon(executionId, "cancel");
  }

  /** A connection is open: results that waited go out, and job containers nobody follows are adopted. */
  async onConnected(): Promise<void> {
    for (const [id, result] of this.unsent) if (this.deps.send(result)) this.unsent.delete(id);
    await this.adopt();
  }

  /**
   * After a restart: every job container of this runner. Those still running are followed
   * to their end; those that ended meanwhile are reported and removed. The server ignores
   * results of executions that ended already.
   */
  private async adopt(): Promise<void> {
    const found = await this.deps.docker.listContainers({ all: true, filters: { label: [`${JOB_LABELS.kind}=${JOB_KIND}`, ...labelFilters(this.deps.ownerLabels)] } });
    for (const c of found) {
      const executionId = c.Labels[JOB_LABELS.execution];
      if (!executionId || this.attempts.has(executionId)) continue;
      const attempt: Attempt = { container: this.deps.docker.getContainer(c.Id), abandoned: false };
      this.attempts.set(executionId, attempt);
      const where = { projectId: c.Labels[JOB_LABELS.project] ?? "", capsuleId: c.Labels[JOB_LABELS.capsule] ?? "", instanceId: c.Labels[JOB_LABELS.instance] ?? c.Id };
      void this.follow(executionId, attempt, where);
    }
  }

  /** Kills and removes every attempt (the runner shuts down for good: the environment was deleted). */
  async removeAll(): Promise<void> {
    await Promise.all([...this.attempts.keys()].map((id) => this.abandon(id, "cancel")));
  }

  /**
   * Streams the attempt's output to the logs until the container exits, then removes it and
   * reports. `attached` is the output of a container this runner started; an adopted one is
   * followed through its logs.
   */
  private async follow(
    executionId: string,
    attempt: Attempt,
    where: { projectId: string; capsuleId: string; instanceId: string },
    attached?: NodeJS.ReadableStream,
  ): Promise<void> {
    const lines = new LineBatcher((batch) => void this.deps.send({ type: "log", ...where, lines: batch }));
    let tail = "";
    let result: { exitCode: number; message?: string };
    try {
      const stream = attached ?? (await attempt.container.logs({ follow: true, stdout: true, stderr: true, timestamps: false }));
      const done = new Promise<void>((ok) => {
        stream.once("end", ok);
        stream.once("close", ok);
        stream.once("error", () => ok());
      });
      const sink = (kind: "stdout" | "stderr") => ({
        write: (chunk: Buffer) => {
          const text = chunk.toString("utf8");
          tail = (tail + text).slice(-TAIL_CHARS);
          lines.add(kind, text);
          return true;
        },
      });
      attempt.container.modem.demuxStream(stream, sink("stdout"), sink("stderr"));
      const { StatusCode } = (await attempt.container.wait()) as { StatusCode: number };
      await done;
      const output = tail.trim();
      result = { exitCode: StatusCode, message: output ? `output: ${output}` : undefined };
    } catch (err) {
      result = { exitCode: -1, message: `the runner lost the job's container: ${reason(err)}` };
    }
    lines.flush(true);
    clearTimeout(attempt.timer);
    if (attempt.abandoned) return;
    this.attempts.delete(executionId);
    // Removed before the result goes out: an execution that has ended leaves nothing behind.
    await attempt.container.remove({ force: true }).catch(() => undefined);
    this.result(executionId, result.exitCode, result.message);
  }

  /** Ends an attempt the runner gives up on; a timeout is reported (the server may still retry), a cancel is not. */
  private async abandon(executionId: string, why: "timeout" | "cancel"): Promise<void> {
    const attempt = this.attempts.get(executionId);
    if (!attempt || attempt.abandoned) return;
    attempt.abandoned = true;
    clearTimeout(attempt.timer);
    this.attempts.delete(executionId);
    await attempt.container.remove({ force: true }).catch(() => undefined);
    // 124: what timeout(1) exits with, so the result reads like the same failure in a shell.
    if (why === "timeout") this.result(executionId, 124, "killed: the job's timeout was reached");
  }

  private result(executionId: string, exitCode: number, message?: string): void {
    const result = { type: "job-result" as const, executionId, exitCode, ...(message ? { message } : {}) };
    if (!this.deps.send(result)) this.unsent.set(executionId, result);
  }
}

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err)).replace(/^\(HTTP code \d+\)\s*\S+\s*-\s*/, "");

/** Docker label filters matching all of `labels`. */
export const labelFilters = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => `${k}=${v}`);

/** Splits output into lines per stream and sends them in batches. */
class LineBatcher {
  private pending: LogLine[] = [];
  private partial: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };
  private timer?: NodeJS.Timeout;

  constructor(private readonly sendBatch: (lines: LogLine[]) => void) {}

  add(stream: "stdout" | "stderr", text: string): void {
    const parts = (this.partial[stream] + text).split("\n");
    this.partial[stream] = parts.pop() ?? "";
    const time = new Date().toISOString();
    for (const line of parts) this.pending.push({ time, stream, text: line });
    if (this.pending.length >= BATCH_LINES) this.flush();
    else if (this.pending.length && !this.timer) this.timer = setTimeout(() => this.flush(), BATCH_MS);
  }

  /** Sends what is pending; `final` also sends unfinished lines (the output ended). */
  flush(final = false): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const stream of final ? (["stdout", "stderr"] as const) : []) {
      if (this.partial[stream]) this.pending.push({ time: new Date().toISOString(), stream, text: this.partial[stream] });
      this.partial[stream] = "";
    }
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    this.sendBatch(batch);
  }
}
