/**
 * The log URLs of automations (a service's session, a task step), served by the runner as
 * Gitpod's runners serve them: `GET <logUrl>` with `Authorization: Bearer <token>` answers the
 * output so far as text and then follows it until the process ends. The token is a logs (or
 * access) token of this environment; only edgeplane can tell, so each new token is checked
 * with a `verify-token` frame (token-verifier.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ProcessOutput } from "./docker/output";
import type { TokenVerifier } from "./token-verifier";

export interface LogsServerOptions {
  /** Address to listen on, e.g. 127.0.0.1, and port (0: any free one). */
  host: string;
  port: number;
  /** The base URL clients reach this server at; default `http://<host>:<port>`. */
  publicUrl?: string;
}

export class LogsServer {
  private readonly outputs = new Map<string, ProcessOutput>();
  private server?: Server;
  private base = "";

  constructor(
    private readonly options: LogsServerOptions,
    private readonly verifier: TokenVerifier,
  ) {}

  /** Starts listening; resolves with the base URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(this.options.port, this.options.host, () => ok());
    });
    const { port } = server.address() as AddressInfo;
    this.base = (this.options.publicUrl ?? `http://${this.options.host}:${port}`).replace(/\/+$/, "");
    return this.base;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  }

  /** Serves `output` at `/logs/<path>` and answers that URL. */
  publish(path: string, output: ProcessOutput): string {
    this.outputs.set(path, output);
    return `${this.base}/logs/${path}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fail = (status: number, text: string): void => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8" }).end(`${text}\n`);
    };
    if (req.method !== "GET") return fail(405, "only GET is served here");
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const output = path.startsWith("/logs/") ? this.outputs.get(path.slice("/logs/".length)) : undefined;
    const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
    if (!token) return fail(401, "a logs token of this environment is required: Authorization: Bearer <token> (CreateEnvironmentLogsToken)");
    const verdict = await this.verifier.verify(token);
    if (!verdict.valid) return fail(401, `the token was refused: ${verdict.message ?? "not valid for this environment"}`);
    if (!output) return fail(404, `no logs at ${path}`);
    res.writeHead(200, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff" });
    const unfollow = output.follow((chunk) => {
      if (chunk === null) res.end();
      else res.write(chunk);
    });
    res.once("close", unfollow);
  }
}
