/**
 * Processes in a running container, through `docker exec`: one-shot commands whose output
 * and exit code the runner needs (a readiness check, a stop command, a git clone), and
 * long-lived ones (a service, a task step) whose output is kept for the logs and which can
 * be signalled. Docker has no API to signal an exec'd process, so each long-lived process
 * records its pid (a process group leader: docker exec starts a new session) in a file in
 * the container, and the runner signals the group with `kill` run in the container too.
 * The same files let a restarted runner find a process that outlived it.
 */
import { PassThrough } from "node:stream";
import type Docker from "dockerode";
import { ProcessOutput } from "./output";

/** Where process files live in the machine. */
const STATE_DIR = "/tmp/.edgeplane/processes";

/** What a one-shot command printed and how it ended. */
export interface Completed {
  exitCode: number;
  output: string;
}

/** How a process may be started. */
export interface ProcessOptions {
  /** `NAME=value` entries. */
  env?: string[];
  workingDir?: string;
}

/** Process file names are built from ids the server sends: only these characters reach a shell. */
const SAFE_KEY = /^[A-Za-z0-9._-]{1,200}$/;

function checkKey(key: string): string {
  if (!SAFE_KEY.test(key)) throw new Error(`process key ${JSON.stringify(key)} has characters other than letters, digits, ".", "_" and "-"`);
  return key;
}

/** Runs `cmd` in the container, stdout and stderr interleaved into `onOutput`, and answers its exit code. */
async function execStream(container: Docker.Container, cmd: string[], opts: ProcessOptions, onOutput: (chunk: string) => void): Promise<number> {
  const exec = await container.exec({ Cmd: cmd, Env: opts.env, WorkingDir: opts.workingDir, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const sink = new PassThrough();
  sink.setEncoding("utf8");
  sink.on("data", (d: string) => onOutput(d));
  container.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((ok, fail) => {
    stream.once("end", ok);
    stream.once("close", ok);
    stream.once("error", fail);
  });
  const info = await exec.inspect();
  // Null while Docker has not recorded the end yet; it does so right after the stream ends.
  for (let i = 0; info.ExitCode === null && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    Object.assign(info, await exec.inspect());
  }
  return info.ExitCode ?? -1;
}

/** Runs a one-shot command in the container. */
export async function runIn(container: Docker.Container, cmd: string[], opts: ProcessOptions = {}): Promise<Completed> {
  let output = "";
  const exitCode = await execStream(container, cmd, opts, (c) => (output += c));
  return { exitCode, output };
}

/** A shell command line run by the machine's `sh`, as Gitpod runs automation commands. */
export const shell = (command: string) => ["sh", "-c", command];

/** A long-lived process in a container. */
export class MachineProcess {
  readonly output = new ProcessOutput();
  /** The exit code; null when it was killed by a signal or its end could not be learned. */
  readonly exited: Promise<number | null>;
  private ended = false;

  private constructor(
    private readonly container: Docker.Container,
    readonly key: string,
    run: (p: MachineProcess) => Promise<number | null>,
  ) {
    this.exited = run(this).then(
      (code) => this.finish(code),
      (err: unknown) => {
        this.output.write(`[the runner lost this process: ${err instanceof Error ? err.message : String(err)}]\n`);
        return this.finish(null);
      },
    );
  }

  private finish(code: number | null): number | null {
    this.ended = true;
    this.output.end();
    return code;
  }

  get running(): boolean {
    return !this.ended;
  }

  /**
   * Starts `command` (a shell command line) in the container under `key`, which names its
   * process files: one key is one process at a time.
   */
  static start(container: Docker.Container, key: string, command: string, opts: ProcessOptions = {}): MachineProcess {
    const k = checkKey(key);
    // The wrapper's pid is the group's; its exit code is written down for a runner that restarts meanwhile.
    const wrapper = `mkdir -p ${STATE_DIR} && rm -f ${STATE_DIR}/${k}.exit && echo $$ > ${STATE_DIR}/${k}.pid && { sh -c "$1"; c=$?; echo $c > ${STATE_DIR}/${k}.exit; exit $c; }`;
    return new MachineProcess(container, k, async (p) => {
      const code = await execStream(container, ["sh", "-c", wrapper, "sh", command], opts, (c) => p.output.write(c));
      // 128 + n: the shell died of signal n (it was stopped), so there is no exit code of its own.
      return code > 128 && code < 160 ? null : code;
    });
  }

  /**
   * The process under `key` left by an earlier runner, if it still runs: followed by
   * polling, since it is nobody's child here. Its earlier output stayed with that runner.
   */
  static async adopt(container: Docker.Container, key: string): Promise<MachineProcess | null> {
    const k = checkKey(key);
    const alive = `p=$(cat ${STATE_DIR}/${k}.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null`;
    if ((await runIn(container, shell(alive))).exitCode !== 0) return null;
    return new MachineProcess(container, k, async (p) => {
      p.output.write("[the runner restarted: output printed before that is not available]\n");
      while ((await runIn(container, shell(alive))).exitCode === 0) await new Promise((r) => setTimeout(r, 1000));
      const code = Number.parseInt((await runIn(container, shell(`cat ${STATE_DIR}/${k}.exit`))).output, 10);
      return Number.isInteger(code) ? code : null;
    });
  }

  /**
   * How the process under `key` ended, if it ran and ended in this machine before (while no
   * runner watched it): its exit code, or null when it left no record.
   */
  static async endedBefore(container: Docker.Container, key: string): Promise<number | null> {
    const k = checkKey(key);
    const found = await runIn(container, shell(`cat ${STATE_DIR}/${k}.exit 2>/dev/null`));
    const code = Number.parseInt(found.output, 10);
    return found.exitCode === 0 && Number.isInteger(code) ? code : null;
  }

  /** Sends `signal` to the process and everything it started. */
  async signal(signal: "TERM" | "KILL"): Promise<void> {
    if (this.ended) return;
    await runIn(this.container, shell(`p=$(cat ${STATE_DIR}/${this.key}.pid 2>/dev/null) && kill -${signal} -"$p" 2>/dev/null`)).catch(() => undefined);
  }

  /** SIGTERM, then SIGKILL if it has not ended after `graceMs`. Resolves once it ended. */
  async terminate(graceMs: number): Promise<number | null> {
    await this.signal("TERM");
    const timer = setTimeout(() => void this.signal("KILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
