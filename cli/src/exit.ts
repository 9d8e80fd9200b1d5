/**
 * Exit codes of `edgeplane`, so scripts can tell a mistake in the command line from a refusal
 * of the API and from a deploy that did not become healthy.
 */
export const ExitCode = {
  ok: 0,
  /** A rollout failed, got stuck, was aborted or replaced, or `--timeout` expired. */
  rolloutFailed: 1,
  /** The command line was wrong: an unknown command or flag, a missing argument or setting. */
  usage: 2,
  /** The API refused the request (not found, permission denied, invalid argument, …). */
  refused: 3,
  /** The server could not be reached, or a stream stayed lost longer than allowed. */
  unreachable: 4,
  /** Interrupted (Ctrl-C). */
  interrupted: 130,
} as const;

/** The help text's section on exit codes (also in the README). */
export const exitCodeHelp = `Exit codes:
  0    success
  1    a rollout failed, got stuck, was aborted or replaced, or --timeout expired
  2    usage error: unknown command or flag, missing argument, no context/project/environment
  3    the API refused the request (its code and message are printed)
  4    the server could not be reached, or a stream stayed disconnected too long
  130  interrupted
  exec passes the remote command's exit code through.`;

/** An error that ends the program with `exitCode` and prints `message` on one line. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** A usage error: something the command line left out or got wrong. */
export const usage = (message: string) => new CliError(message, ExitCode.usage);
