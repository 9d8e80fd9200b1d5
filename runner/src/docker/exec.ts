/**
 * Execute through `docker exec`: the command with a TTY or with separate stdout and stderr,
 * stdin when interactive, resizes, and the exit code once it ends.
 */
import { PassThrough, type Duplex } from "node:stream";
import type Docker from "dockerode";
import type { ExecOutput, ExecRequest, ExecSession } from "../driver";
import { reason } from "../log";

export async function startExec(container: Docker.Container, req: ExecRequest, out: ExecOutput): Promise<ExecSession> {
  const tty = req.tty !== undefined;
  const exec = await container.exec({
    Cmd: [req.command, ...req.arguments],
    AttachStdin: req.interactive,
    AttachStdout: true,
    AttachStderr: true,
    Tty: tty,
  });
  const stream: Duplex = await exec.start({ hijack: true, stdin: req.interactive, Tty: tty });
  if (tty && req.tty) await exec.resize({ h: req.tty.height, w: req.tty.width }).catch(() => {});
  if (tty) {
    stream.on("data", (c: Buffer) => out.output("stdout", c));
  } else {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    stdout.on("data", (c: Buffer) => out.output("stdout", c));
    stderr.on("data", (c: Buffer) => out.output("stderr", c));
    container.modem.demuxStream(stream, stdout, stderr);
  }
  let ended = false;
  const finish = async () => {
    if (ended) return;
    ended = true;
    try {
      const info = await exec.inspect();
      out.exit(info.ExitCode ?? 0);
    } catch (e) {
      out.exit(1, reason(e));
    }
  };
  stream.once("end", () => void finish());
  stream.once("close", () => void finish());
  // Without stdin the command must not wait for any.
  if (!req.interactive) stream.end();
  return {
    input(data, closed) {
      if (data.length > 0) stream.write(data);
      if (closed) stream.end();
    },
    resize(width, height) {
      if (tty) void exec.resize({ h: height, w: width }).catch(() => {});
    },
    close() {
      stream.destroy();
    },
  };
}
