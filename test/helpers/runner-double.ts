/**
 * A runner double speaking runner protocol v1 (proto/frames/runner.ts): it connects like a
 * real runner, checks every frame it receives against the protocol's schema, applies what it
 * is told to run by reporting it, and can be
 * told to fail, to crash its instances or to run the wrong version. It runs in workerd
 * (test/helpers/runner.ts) and in Node against a Worker on the network (test/e2e/runner.ts);
 * a RunnerLink is the only difference.
 */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJson } from "@connectrpc/connect/protocol-connect";
import type {
  LogLine,
  MetricSample,
  ReportedInstance,
  RunnerMessage,
  ServerMessage,
  EnvironmentRunPhase,
  ServiceRunPhase,
  StepRunPhase,
} from "../../proto/frames/runner";
import { parseServerFrame, RUNNER_PROTOCOL_VERSION } from "../../proto/frames/runner";
import { Service as AuthService } from "../../proto/gen/api/v1/authentication/service_pb";
import { Service as RoleService } from "../../proto/gen/api/v1/role/service_pb";
import { Service as ServiceAccountService } from "../../proto/gen/api/v1/service_account/service_pb";

/** How often the double sends `ping`. */
const PING_EVERY_MS = 500;

/** A text WebSocket, whichever runtime opened it. */
export interface RunnerSocket {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  onMessage(listener: (text: string) => void): void;
  onClose(listener: (code: number, reason: string) => void): void;
}

/** How a runner double reaches edgeplane: HTTP requests by path, and a socket for a path. */
export interface RunnerLink {
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Opens the socket at `path` (with its ticket); throws a ConnectError naming `what` when refused. */
  open(path: string, what: string): Promise<RunnerSocket>;
}

/** Builds a client of a service, authenticated with `token` when given. */
export type ClientFactory = <S extends DescService>(service: S, token?: string) => Client<S>;

/** How the runner answers `desired`; change it at any time through `runner.behavior`. */
export interface Behavior {
  /** "ok": report `applied` and the instances; "fail": report `apply-failed`; "never": stay silent. */
  apply: "ok" | "fail" | "never";
  /** How the instances of an applied rollout are reported. */
  instances: "ready" | "crashing" | "wrong-version";
  /** Wait this long before answering `desired`. */
  applyDelayMs: number;
  /** The base URL reported (in `applied`) for every port of the capsule's interfaces; none when null. */
  endpoint: string | null;
  /** The exit code `job-run` commands end with; null: they run until cancelled, with no answer. */
  jobExitCode: number | null;
  /** Automations: a started service reports starting, then running ("ok") or failed ("fail"); "never" stays silent. */
  services: "ok" | "fail" | "never";
  /** Automations: a task step reports running, then succeeded or failed after `stepDelayMs`; "slow" runs until stopped or `finishStep`. */
  steps: "succeed" | "fail" | "slow";
  stepDelayMs: number;
  /** Developer environments: the machine starts, stops and is deleted as told ("ok"), fails to start ("fail"), or nothing is reported ("never"). */
  environment: "ok" | "fail" | "never";
  /** Wait this long before answering `environment-desired`. */
  environmentDelayMs: number;
}

const defaultBehavior: Behavior = {
  apply: "ok",
  instances: "ready",
  applyDelayMs: 0,
  endpoint: null,
  jobExitCode: 0,
  services: "ok",
  steps: "succeed",
  stepDelayMs: 0,
  environment: "ok",
  environmentDelayMs: 0,
};

type MessageOf<K extends ServerMessage["type"]> = Extract<ServerMessage, { type: K }>;

/** An instance and the rollout it was started for (with "wrong-version" it reports another). */
interface Tracked {
  forRollout: number;
  report: ReportedInstance;
}

// btoa over a binary string: the same in workerd and in Node, with no server code imported.
const utf8Base64 = (text: string) => btoa(String.fromCharCode(...new TextEncoder().encode(text)));

/**
 * An access token of a new service account holding `runner:connect` on the environment
 * only, made through the public API by the file's admin.
 */
export async function issueRunnerToken(environmentId: string, adminToken: string, client: ClientFactory): Promise<string> {
  const admin = { accessToken: adminToken };
  const name = `runner-${crypto.randomUUID().slice(0, 8)}`;
  const roles = client(RoleService, admin.accessToken);
  await roles.create({
    roleId: name,
    permissions: [{ action: "runner:connect", scope: { environment: environmentId, project: "*", resource: "*" } }],
  });
  const accounts = client(ServiceAccountService, admin.accessToken);
  const { clientId, clientSecret } = await accounts.create({ name });
  // Create does not return the account's id; list does.
  const account = (await accounts.list({})).serviceAccounts.find((s) => s.name === name);
  if (!account) throw new Error(`service account ${name} was created but is not listed`);
  await roles.assign({ roleId: name, entityId: { kind: { case: "serviceAccountId", value: account.serviceAccountId } } });
  const session = await client(AuthService).login({ method: { case: "clientCredentials", value: { clientId, clientSecret } } });
  if (!session.token?.accessToken) throw new Error(`login of service account ${name} returned no access token`);
  return session.token.accessToken;
}

/** The ConnectError of a refused HTTP request (the server answers Connect error JSON). */
export async function refusal(res: Response, what: string): Promise<ConnectError> {
  const fallback = new ConnectError(`${what}: HTTP ${res.status}`, codeFromHttpStatus(res.status));
  try {
    return errorFromJson(await res.json(), undefined, fallback);
  } catch {
    return fallback;
  }
}

/** One runner connection to one environment. */
export class TestRunner {
  /** Every message the server sent, in order. */
  readonly received: ServerMessage[] = [];
  /** Why each frame the server sent that failed the protocol's schema was refused (should stay empty). */
  readonly invalid: string[] = [];
  /** Resolves when the socket closes, with the code and reason of the close. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly behavior: Behavior;

  private readonly waiters = new Set<{ match: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void; reject: (e: Error) => void }>();
  /** Per capsule (`project/capsule`), the instances it runs, by instance id. */
  private readonly capsules = new Map<string, Map<string, Tracked>>();
  private readonly execSessions = new Set<string>();
  /** Developer environments: what the machine is, as last reported (null before the first report). */
  environmentPhase: EnvironmentRunPhase | null = null;
  /** Automations: what each service runs (its session and phase), and every task step it was given. */
  readonly services = new Map<string, { session: string; phase: ServiceRunPhase }>();
  readonly steps = new Map<string, { executionId: string; label: string; phase: StepRunPhase }>();
  private closeInfo: { code: number; reason: string } | null = null;

  private constructor(
    private readonly ws: RunnerSocket,
    readonly environmentId: string,
    readonly name: string,
    behavior: Partial<Behavior>,
  ) {
    this.behavior = { ...defaultBehavior, ...behavior };
    // The keep-alive every runner sends (docs/runner-protocol.md); tests run with a silence
    // deadline of seconds, so the double pings often.
    const pinging = setInterval(() => this.trySendText("ping"), PING_EVERY_MS);
    this.stopPinging = () => clearInterval(pinging);
    this.closed = new Promise((resolve) => {
      ws.onClose((code, reason) => {
        clearInterval(pinging);
        this.closeInfo = { code, reason };
        for (const w of this.waiters) w.reject(new Error(`${this.describe()}: socket closed (${code} ${reason}) before a matching message arrived; received: ${this.types()}`));
        this.waiters.clear();
        resolve(this.closeInfo);
      });
    });
    ws.onMessage((text) => {
      if (text === "pong") return;
      const frame = parseServerFrame(text);
      // A frame the schema refuses is a server bug: fail whoever waits, loudly.
      if (!frame.ok) {
        this.invalid.push(frame.reason);
        for (const w of this.waiters) w.reject(new Error(`${this.describe()}: the server sent an invalid frame: ${frame.reason}`));
        this.waiters.clear();
        return;
      }
      this.onMessage(frame.message);
    });
  }

  /** Stops the keep-alive: the runner falls silent, as one that vanished would. */
  readonly stopPinging: () => void;

  private trySendText(text: string): void {
    try {
      this.ws.send(text);
    } catch {
      // Closed: the close listener stops the pings.
    }
  }

  /** Gets a ticket, opens the socket and says hello; resolves once the server's `welcome` arrived. */
  static async connect(opts: { environmentId: string; token: string; link: RunnerLink; name?: string; behavior?: Partial<Behavior> }): Promise<TestRunner> {
    const { environmentId, token, link, name = "test-runner" } = opts;
    const ticketRes = await link.fetch(`/environments/${environmentId}/runner/tickets`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    if (!ticketRes.ok) throw await refusal(ticketRes, `runner ticket for environment ${environmentId}`);
    const { url } = (await ticketRes.json()) as { ticket: string; expiresAt: string; url: string };
    const runner = new TestRunner(await link.open(url, `runner socket for environment ${environmentId}`), environmentId, name, opts.behavior ?? {});
    runner.send({ type: "hello", version: RUNNER_PROTOCOL_VERSION, runner: { name, version: "test" }, cluster: { type: "docker" } });
    await runner.waitFor("welcome");
    return runner;
  }

  /** The first message, already received or still to come, of this type or matching the predicate. */
  waitFor<K extends ServerMessage["type"]>(type: K, timeoutMs?: number): Promise<MessageOf<K>>;
  waitFor<M extends ServerMessage>(predicate: (m: ServerMessage) => m is M, timeoutMs?: number): Promise<M>;
  waitFor(predicate: (m: ServerMessage) => boolean, timeoutMs?: number): Promise<ServerMessage>;
  waitFor(what: string | ((m: ServerMessage) => boolean), timeoutMs = 5000): Promise<ServerMessage> {
    const match = typeof what === "string" ? (m: ServerMessage) => m.type === what : what;
    const past = this.received.find(match);
    if (past) return Promise.resolve(past);
    if (this.closeInfo) {
      return Promise.reject(new Error(`${this.describe()}: socket is closed (${this.closeInfo.code}) and no matching message arrived; received: ${this.types()}`));
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (m: ServerMessage) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const wanted = typeof what === "string" ? `"${what}" message` : "matching message";
        reject(new Error(`${this.describe()}: no ${wanted} within ${timeoutMs}ms; received: ${this.types()}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Sends a message as is; throws if the socket is closed. */
  send(msg: RunnerMessage): void {
    this.ws.send(JSON.stringify(msg));
  }

  /** Sends a frame that need not be a valid message: an object as JSON, a string as is. */
  sendRaw(frame: object | string): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Sends log lines of an instance; plain strings are stdout lines. */
  log(projectId: string, capsuleId: string, instanceId: string, lines: string[] | LogLine[]): void {
    const asLines = lines.map((l): LogLine => (typeof l === "string" ? { stream: "stdout", text: l } : l));
    this.send({ type: "log", projectId, capsuleId, instanceId, lines: asLines });
  }

  metrics(projectId: string, capsuleId: string, samples: MetricSample[]): void {
    this.send({ type: "metrics", projectId, capsuleId, samples });
  }

  /** Reports this full set of the capsule's instances, and keeps it as what the capsule runs. */
  reportInstances(projectId: string, capsuleId: string, instances: ReportedInstance[]): void {
    const tracked = new Map(instances.map((i): [string, Tracked] => [i.instanceId, { forRollout: i.rolloutId, report: i }]));
    this.capsules.set(capsuleKey(projectId, capsuleId), tracked);
    this.sendInstances(projectId, capsuleId);
  }

  /** Closes the socket from the runner's side. */
  disconnect(code = 1000, reason = "test runner disconnecting"): void {
    this.ws.close(code, reason);
  }

  private onMessage(msg: ServerMessage): void {
    this.received.push(msg);
    for (const w of this.waiters) {
      if (w.match(msg)) {
        this.waiters.delete(w);
        w.resolve(msg);
      }
    }
    switch (msg.type) {
      case "desired":
        if (this.behavior.applyDelayMs > 0) setTimeout(() => this.apply(msg), this.behavior.applyDelayMs);
        else this.apply(msg);
        return;
      case "stop": {
        const instances = this.instancesOf(msg.projectId, msg.capsuleId);
        for (const [id, t] of instances) if (t.forRollout === msg.rolloutId) instances.delete(id);
        this.sendInstances(msg.projectId, msg.capsuleId);
        return;
      }
      case "restart-instance": {
        const t = this.instancesOf(msg.projectId, msg.capsuleId).get(msg.instanceId);
        if (t) t.report = { ...t.report, restarts: (t.report.restarts ?? 0) + 1, startedAt: new Date().toISOString() };
        this.sendInstances(msg.projectId, msg.capsuleId);
        return;
      }
      case "exec-start":
        this.execSessions.add(msg.sessionId);
        this.trySend({
          type: "exec-output",
          sessionId: msg.sessionId,
          stream: "stdout",
          data: utf8Base64(`started ${[msg.command, ...msg.arguments].join(" ")}\n`),
        });
        return;
      case "exec-input":
        if (msg.data) this.trySend({ type: "exec-output", sessionId: msg.sessionId, stream: "stdout", data: msg.data });
        if (msg.closed) this.execExit(msg.sessionId);
        return;
      case "exec-close":
        this.execExit(msg.sessionId);
        return;
      case "job-run":
        if (this.behavior.jobExitCode !== null) this.trySend({ type: "job-result", executionId: msg.executionId, exitCode: this.behavior.jobExitCode, message: `ran ${msg.command}` });
        return;
      case "service-desired":
        this.onServiceDesired(msg);
        return;
      case "services-synced":
        for (const id of this.services.keys()) if (!msg.serviceIds.includes(id)) this.stopService(id);
        return;
      case "task-step-run": {
        // Sent again after a reconnect: a step already known keeps going.
        if (this.steps.has(msg.stepId)) return;
        this.steps.set(msg.stepId, { executionId: msg.executionId, label: msg.label, phase: "running" });
        this.stepStatus(msg.stepId, "running");
        const end = this.behavior.steps;
        if (end !== "slow") setTimeout(() => this.finishStep(msg.stepId, end === "succeed" ? "succeeded" : "failed"), this.behavior.stepDelayMs);
        return;
      }
      case "environment-desired":
        if (this.behavior.environmentDelayMs > 0) setTimeout(() => this.onEnvironmentDesired(msg), this.behavior.environmentDelayMs);
        else this.onEnvironmentDesired(msg);
        return;
      case "task-step-stop": {
        const step = this.steps.get(msg.stepId);
        // Every stop is answered, also for a step this runner never got.
        if (!step) this.trySend({ type: "task-step-status", executionId: msg.executionId, stepId: msg.stepId, phase: "stopped" });
        else if (step.phase === "running") this.finishStep(msg.stepId, "stopped");
        return;
      }
    }
  }

  /** Answers `desired` as `behavior` says, at the time it is answered. */
  private apply(msg: MessageOf<"desired">): void {
    const { projectId, capsuleId, rolloutId } = msg;
    if (this.behavior.apply === "never") return;
    if (this.behavior.apply === "fail") {
      this.trySend({ type: "apply-failed", projectId, capsuleId, rolloutId, message: `test runner was told to fail applying rollout ${rolloutId}` });
      return;
    }
    const ports = ((msg.config as { network?: { interfaces?: { port?: number }[] } } | null)?.network?.interfaces ?? []).map((i) => Number(i.port ?? 0));
    const endpoint = this.behavior.endpoint;
    this.trySend({
      type: "applied",
      projectId,
      capsuleId,
      rolloutId,
      resources: [{ kind: "Deployment", name: capsuleId, namespace: this.environmentId }],
      ...(endpoint ? { endpoints: ports.map((port) => ({ port, url: endpoint })) } : {}),
    });
    // protobuf JSON leaves out zero values: no `replicas` means 0.
    const replicas = Number((msg.config as { replicas?: number } | null)?.replicas ?? 0);
    const previous = this.instancesOf(projectId, capsuleId);
    const next = new Map<string, Tracked>();
    for (let i = 0; i < replicas; i++) {
      const instanceId = `${capsuleId}-${rolloutId}-${i}`;
      const before = previous.get(instanceId)?.report;
      // `desired` is resent after every reconnect: an instance already running keeps its history.
      next.set(instanceId, { forRollout: rolloutId, report: this.instance(instanceId, rolloutId, before) });
    }
    this.capsules.set(capsuleKey(projectId, capsuleId), next);
    this.sendInstances(projectId, capsuleId);
  }

  /**
   * Moves the environment's machine where `environment-desired` says, reporting each phase
   * on the way: running comes with an SSH URL, a logs URL, one URL per port of the spec and
   * every SSH key of the spec applied.
   */
  private onEnvironmentDesired(msg: MessageOf<"environment-desired">): void {
    const { specVersion, environmentId } = msg;
    if (this.behavior.environment === "never") return;
    const report = (phase: EnvironmentRunPhase, extra: { failureMessage?: string[]; status?: unknown } = {}) => {
      this.environmentPhase = phase;
      this.trySend({ type: "environment-status", specVersion, phase, ...extra });
    };
    switch (msg.desiredPhase) {
      case "running": {
        if (this.behavior.environment === "fail") {
          report("starting");
          report("stopped", { failureMessage: [`test runner was told to fail starting environment ${environmentId}`] });
          return;
        }
        if (this.environmentPhase !== "running") report("starting");
        const spec = msg.spec as { ports?: { port?: number }[]; sshPublicKeys?: { id?: string }[] };
        const ports = (spec.ports ?? []).map((p) => ({ port: p.port, url: `https://${p.port}-${environmentId}.ports.test` }));
        const sshPublicKeys = (spec.sshPublicKeys ?? []).map((k) => ({ id: k.id, phase: "CONTENT_PHASE_READY" }));
        const environmentUrls = { ssh: { url: `ssh://${environmentId}.ssh.test` }, logs: `https://logs.test/environments/${environmentId}`, ports };
        report("running", { status: { environmentUrls, sshPublicKeys } });
        return;
      }
      case "stopped":
        if (this.environmentPhase !== "stopped" && this.environmentPhase !== null) report("stopping");
        report("stopped");
        return;
      case "deleted":
        report("deleting");
        report("deleted");
        return;
    }
  }

  /** Asks the server whether `token` is an access or logs token of this runner's environment. */
  async verifyToken(token: string): Promise<MessageOf<"token-verified">> {
    const requestId = crypto.randomUUID();
    this.send({ type: "verify-token", requestId, token });
    return this.waitFor((m): m is MessageOf<"token-verified"> => m.type === "token-verified" && m.requestId === requestId);
  }

  /** Ends a running task step with `phase` and reports it. */
  finishStep(stepId: string, phase: Exclude<StepRunPhase, "running">): void {
    const step = this.steps.get(stepId);
    if (!step || step.phase !== "running") return;
    step.phase = phase;
    this.stepStatus(stepId, phase, phase === "failed" ? `test runner was told to fail ${step.label}` : undefined);
  }

  private stepStatus(stepId: string, phase: StepRunPhase, failureMessage?: string): void {
    const step = this.steps.get(stepId)!;
    this.trySend({ type: "task-step-status", executionId: step.executionId, stepId, phase, logUrl: `https://logs.test/${stepId}`, ...(failureMessage ? { failureMessage } : {}) });
  }

  /** Starts a service for a new session, stops it when it should not run. */
  private onServiceDesired(msg: MessageOf<"service-desired">): void {
    const current = this.services.get(msg.serviceId);
    if (msg.desiredPhase !== "running") {
      this.stopService(msg.serviceId);
      if (msg.desiredPhase === "deleted") this.services.delete(msg.serviceId);
      return;
    }
    // Same session: already running, or exited and not to be restarted until the session changes.
    if (current?.session === msg.session) return;
    const report = (phase: ServiceRunPhase, failureMessage?: string) => {
      this.services.set(msg.serviceId, { session: msg.session, phase });
      this.trySend({ type: "service-status", serviceId: msg.serviceId, session: msg.session, phase, logUrl: `https://logs.test/${msg.serviceId}`, ...(failureMessage ? { failureMessage } : {}) });
    };
    if (this.behavior.services === "never") return;
    report("starting");
    report(this.behavior.services === "ok" ? "running" : "failed", this.behavior.services === "fail" ? `${msg.commands.start}: exit code 1` : undefined);
  }

  private stopService(serviceId: string): void {
    const s = this.services.get(serviceId);
    if (!s || (s.phase !== "starting" && s.phase !== "running")) return;
    for (const phase of ["stopping", "stopped"] as const) {
      s.phase = phase;
      this.trySend({ type: "service-status", serviceId, session: s.session, phase });
    }
  }

  private instance(instanceId: string, rolloutId: number, before?: ReportedInstance): ReportedInstance {
    const base: ReportedInstance = {
      instanceId,
      rolloutId,
      ready: true,
      state: "running",
      restarts: before?.restarts ?? 0,
      node: "test-node",
      startedAt: before?.startedAt ?? new Date().toISOString(),
    };
    switch (this.behavior.instances) {
      case "ready":
        return base;
      case "crashing":
        return { ...base, ready: false, restarts: Math.max(3, base.restarts ?? 0), message: "CrashLoopBackOff" };
      case "wrong-version":
        // Another rollout than the one it was started for (rollout ids are positive on the wire).
        return { ...base, rolloutId: rolloutId + 100 };
    }
  }

  private instancesOf(projectId: string, capsuleId: string): Map<string, Tracked> {
    const key = capsuleKey(projectId, capsuleId);
    let instances = this.capsules.get(key);
    if (!instances) this.capsules.set(key, (instances = new Map()));
    return instances;
  }

  private sendInstances(projectId: string, capsuleId: string): void {
    const instances = [...this.instancesOf(projectId, capsuleId).values()].map((t) => t.report);
    this.trySend({ type: "instances", projectId, capsuleId, instances });
  }

  private execExit(sessionId: string): void {
    if (!this.execSessions.delete(sessionId)) return;
    this.trySend({ type: "exec-exit", sessionId, exitCode: 0 });
  }

  /** Automatic answers may race a closing socket; a test that cares sees it in `closed`. */
  private trySend(msg: RunnerMessage): void {
    try {
      this.send(msg);
    } catch {
      // Socket closed.
    }
  }

  private describe(): string {
    return `test runner ${this.name} of environment ${this.environmentId}`;
  }

  private types(): string {
    return this.received.map((m) => m.type).join(", ") || "nothing";
  }
}

const capsuleKey = (projectId: string, capsuleId: string) => `${projectId}/${capsuleId}`;
