/**
 * What one run of the CLI works with: the global flags, the configuration file and its
 * current context, and Connect clients of the API that carry (and refresh) its tokens.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { type Auth, type Config, type Context, configPath, findContext, loadConfig, saveConfig } from "./config";
import { CliError, ExitCode, usage } from "./exit";

/** Rig's global flags, as parsed from the command line. */
export interface GlobalOptions {
  host?: string;
  project?: string;
  environment?: string;
  context?: string;
  output: OutputFormat;
  nonInteractive?: boolean;
}

export type OutputFormat = "pretty" | "json" | "yaml";

/** The server a context-less run talks to: `npm run dev`'s. */
export const defaultHost = "http://localhost:8787";

/** Refresh an access token this long before it expires, so it does not expire in flight. */
const expirySkewMs = 30_000;

export class Session {
  readonly config: Config;
  readonly configFile: string;

  constructor(
    readonly options: GlobalOptions,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.configFile = configPath(env);
    this.config = loadConfig(this.configFile);
  }

  /** The context in use: `-C`, else the current one; throws for a `-C` naming no context. */
  get context(): Context | undefined {
    const name = this.options.context ?? this.config.currentContext;
    const context = findContext(this.config, name);
    if (this.options.context && !context) {
      throw usage(`no context named "${this.options.context}" in ${this.configFile}: see \`edgeplane config view-config\``);
    }
    return context;
  }

  /** The server: `-H`, else $EDGEPLANE_HOST, else the context's, else localhost:8787. */
  get host(): string {
    return (this.options.host ?? this.env.EDGEPLANE_HOST ?? this.context?.host ?? defaultHost).replace(/\/+$/, "");
  }

  /** The project: `-P`, else the context's; a usage error when neither names one. */
  get project(): string {
    const project = this.options.project ?? this.context?.project;
    if (!project) throw usage("no project: pass -P/--project, or choose one with `edgeplane config use-project <project>`");
    return project;
  }

  /** The environment: `-E`, else the context's; a usage error when neither names one. */
  get environment(): string {
    const environment = this.options.environment ?? this.context?.environment;
    if (!environment) throw usage("no environment: pass -E/--environment, or choose one with `edgeplane config use-environment <environment>`");
    return environment;
  }

  /** Whether the CLI may ask questions: not with -I, and only when a person is at the terminal. */
  get interactive(): boolean {
    return !this.options.nonInteractive && Boolean(process.stdin.isTTY && process.stdout.isTTY);
  }

  save(): void {
    saveConfig(this.config, this.configFile);
  }

  /** Stores `auth` in the context in use (saved at once: a refresh token is only good once). */
  setAuth(auth: Auth | undefined): void {
    const context = this.context;
    if (!context) throw usage("no context: run `edgeplane config init` or `edgeplane auth login` first");
    context.auth = auth;
    this.save();
  }

  /** A client of `service` on the host, anonymous. */
  anonymous<S extends DescService>(service: S): Client<S> {
    return createClient(service, createConnectTransport({ baseUrl: this.host }));
  }

  /** A client of `service` that sends the context's access token, refreshed when it has expired. */
  client<S extends DescService>(service: S): Client<S> {
    const authorize: Interceptor = (next) => async (req) => {
      req.header.set("authorization", `Bearer ${await this.accessToken()}`);
      return next(req);
    };
    return createClient(service, createConnectTransport({ baseUrl: this.host, interceptors: [authorize] }));
  }

  private refreshing: Promise<string> | undefined;

  /** The access token of the context in use, refreshed (and saved) when it has expired. */
  async accessToken(): Promise<string> {
    const auth = this.context?.auth;
    if (!auth) throw new CliError("not logged in: run `edgeplane auth login`", ExitCode.usage);
    if (expiresAt(auth.accessToken) - expirySkewMs > Date.now()) return auth.accessToken;
    this.refreshing ??= this.refresh(auth);
    return this.refreshing;
  }

  private async refresh(auth: Auth): Promise<string> {
    try {
      const { token } = await this.anonymous(AuthService).refreshToken({ refreshToken: auth.refreshToken });
      if (!token) throw new ConnectError("the server returned no token", Code.Internal);
      this.setAuth({ ...auth, accessToken: token.accessToken, refreshToken: token.refreshToken });
      return token.accessToken;
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.Unauthenticated) {
        throw new CliError(`the session has ended (${e.rawMessage}): run \`edgeplane auth login\``, ExitCode.refused);
      }
      throw e;
    }
  }
}

/** When a JWT expires (ms since the epoch); 0 for a token that cannot be read. */
export function expiresAt(jwt: string): number {
  const payload = jwt.split(".")[1];
  if (!payload) return 0;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    return typeof claims === "object" && claims !== null && "exp" in claims && typeof claims.exp === "number" ? claims.exp * 1000 : 0;
  } catch {
    return 0;
  }
}
