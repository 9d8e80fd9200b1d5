/**
 * The CLI's configuration file: contexts (a server, the project and environment in use, and the
 * tokens of whoever logged in), at $XDG_CONFIG_HOME/edgeplane/config.yaml, readable by its owner only.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parse, stringify } from "yaml";
import { z } from "zod";
import { CliError, ExitCode } from "./exit";

const Auth = z.object({
  /** The user or service account id the tokens belong to. */
  subject: z.string().optional(),
  accessToken: z.string(),
  refreshToken: z.string(),
});

const Context = z.object({
  name: z.string().min(1),
  host: z.string().url(),
  project: z.string().optional(),
  environment: z.string().optional(),
  auth: Auth.optional(),
});

const ConfigFile = z.object({
  currentContext: z.string().optional(),
  contexts: z.array(Context).default([]),
});

export type Auth = z.infer<typeof Auth>;
export type Context = z.infer<typeof Context>;
export type Config = z.infer<typeof ConfigFile>;

/** Where the configuration lives: $XDG_CONFIG_HOME (default ~/.config)/edgeplane/config.yaml. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "edgeplane", "config.yaml");
}

/** Reads the configuration; a missing file is an empty configuration. */
export function loadConfig(path = configPath()): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof Error && "code" in e && e.code === "ENOENT") return { contexts: [] };
    throw e;
  }
  const parsed = ConfigFile.safeParse(parse(text) ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CliError(`${path} is not a valid edgeplane configuration: ${issue?.path.join(".")}: ${issue?.message}`, ExitCode.usage);
  }
  return parsed.data;
}

/** Writes the configuration with mode 0600 (it holds tokens), replacing the file atomically. */
export function saveConfig(config: Config, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, stringify(config), { mode: 0o600 });
  // writeFileSync's mode applies only to a new file, and the umask may have narrowed it.
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** The context named `name`, or undefined. */
export const findContext = (config: Config, name: string | undefined) => (name ? config.contexts.find((c) => c.name === name) : undefined);

/** Adds `context`, or replaces the context of the same name. */
export function putContext(config: Config, context: Context): void {
  const i = config.contexts.findIndex((c) => c.name === context.name);
  if (i === -1) config.contexts.push(context);
  else config.contexts[i] = context;
}
