/**
 * proto.SkaffoldService: the dev loop of one environment, served under
 * /environments/<id>/skaffold/ as Connect here and as Skaffold's HTTP/JSON gateway in
 * http/skaffold-gateway.ts. Both call `skaffoldOps`; the environment's object owns the
 * session (durable-objects/environment/skaffold/session.ts). See docs/skaffold.md.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { type Event, type Intent, type LogEntry, SkaffoldService, type State, type TriggerState } from "../../proto/gen/skaffold/v1/skaffold_pb";
import type { Outcome } from "../core/outcome";
import { unwrap } from "../core/outcome";
import { held, type SkaffoldLogRow, type SkaffoldPhase as Phase } from "../../durable-objects/contract";
import type { Scope } from "../auth/principal";
import type { Env } from "../env";
import { envOf } from "./context";
import { bounded, notFound, unavailable } from "../core/errors";
import { isDnsLabel } from "../core/names";
import { defineService, type Rules } from "./registry";

/** How long one Events round trip to the environment's object waits for a new entry. */
const EVENTS_POLL_MS = 20_000;
/** Consecutive restarts of the environment's object an Events stream rides out before it gives up. */
const EVENTS_RETRIES = 3;

/** The environment a Skaffold call is about: `<id>` in `/environments/<id>/skaffold/...`. */
export function environmentIdOf(url: URL): string | undefined {
  const id = /^\/environments\/([^/]+)\/skaffold\//.exec(url.pathname)?.[1];
  try {
    return id === undefined ? undefined : decodeURIComponent(id);
  } catch {
    return id; // Malformed escapes: no environment has this id, which `session` answers.
  }
}

/** The environment comes from the path, since Skaffold's messages do not name one. */
const environmentOfPath = (_: unknown, url: URL): Scope => {
  const id = environmentIdOf(url);
  return { resource: `environment/${id ?? "*"}`, environment: id };
};
const view = { action: "environment:view", scope: environmentOfPath } as const;
const edit = { action: "environment:edit:ephemeral", scope: environmentOfPath } as const;

/** The access rule of every RPC; the HTTP/JSON gateway applies the same ones. */
export const skaffoldRules = {
  getState: view,
  eventLog: view,
  events: view,
  execute: edit,
  autoBuild: edit,
  autoSync: edit,
  autoDeploy: edit,
  handle: edit,
} satisfies Rules<typeof SkaffoldService>;

/** The Skaffold API of the environment's object, for `using`; an id no environment can have is not_found without asking it. */
function session(env: Env, id: string | undefined) {
  if (!id || !isDnsLabel(id)) throw notFound(`environment ${id ?? ""}`);
  return held(env.ENVIRONMENTS.getByName(id).skaffold());
}

/** An answer of the object; its not_found (no such environment) names the environment. */
function settle<T>(id: string, outcome: Outcome<T>): T {
  if (!outcome.ok && outcome.code === Code.NotFound) throw notFound(`environment ${bounded(id)}`);
  return unwrap(outcome);
}

/** The operations of the service on one environment, for the Connect handlers and the gateway. */
export const skaffoldOps = {
  async state(env: Env, id: string): Promise<State> {
    using api = session(env, id);
    return settle(id, await api.state());
  },

  /**
   * The whole log, then live entries as they are logged, until `signal` aborts. The first
   * round trip happens before this returns, so an unknown environment fails before a stream
   * starts. Each subscriber pulls at its own pace (a long poll per batch), in sequence order:
   * it asks for what follows the last entry it got, so the seam between replay and live has
   * neither a gap nor a duplicate.
   */
  async events(env: Env, id: string, signal: AbortSignal): Promise<AsyncGenerator<LogEntry>> {
    // One stub for the stream's polls, let go when it ends (or a restart breaks it).
    let api = session(env, id);
    let first: SkaffoldLogRow[];
    try {
      first = settle(id, await api.events(0, 0));
    } catch (err) {
      api[Symbol.dispose]();
      throw err;
    }
    return (async function* () {
      let rows = first;
      let after = 0;
      let failures = 0;
      try {
        for (;;) {
          for (const r of rows) {
            yield r.entry;
            after = r.seq;
          }
          if (signal.aborted) return;
          try {
            rows = settle(id, await api.events(after, EVENTS_POLL_MS));
            failures = 0;
          } catch (err) {
            // The object restarted (eviction, a deploy): its log is in storage, so ask a new stub for what follows.
            if (!(err as { retryable?: boolean }).retryable || ++failures > EVENTS_RETRIES) {
              throw err instanceof ConnectError ? err : unavailable(`the event stream of environment ${id} was interrupted: reconnect to replay it`);
            }
            api[Symbol.dispose]();
            api = session(env, id);
            rows = [];
          }
        }
      } finally {
        api[Symbol.dispose]();
      }
    })();
  },

  async execute(env: Env, id: string, intent: Intent | undefined): Promise<void> {
    using api = session(env, id);
    settle(id, await api.execute(intent));
  },

  /** AutoBuild, AutoSync, AutoDeploy: `enabled` must be present (false is a value). */
  async trigger(env: Env, id: string, phase: Phase, state: TriggerState | undefined): Promise<void> {
    // Skaffold's words, which its clients may show.
    if (state?.val.case !== "enabled") throw new ConnectError("missing required boolean parameter 'enabled'", Code.InvalidArgument);
    using api = session(env, id);
    settle(id, await api.autoTrigger(phase, state.val.value));
  },

  async handle(env: Env, id: string, event: Event): Promise<void> {
    using api = session(env, id);
    settle(id, await api.handle(event));
  },
};

const idOf = (ctx: HandlerContext) => environmentIdOf(new URL(ctx.url)) ?? "";

export const skaffold = defineService(SkaffoldService, skaffoldRules, {
  async getState(_, ctx) {
    return skaffoldOps.state(envOf(ctx), idOf(ctx));
  },
  // Deprecated alias of Events; what the client streams in is ignored, as in Skaffold.
  async *eventLog(_, ctx) {
    yield* await skaffoldOps.events(envOf(ctx), idOf(ctx), ctx.signal);
  },
  async *events(_, ctx) {
    yield* await skaffoldOps.events(envOf(ctx), idOf(ctx), ctx.signal);
  },
  async execute(req, ctx) {
    await skaffoldOps.execute(envOf(ctx), idOf(ctx), req.intent);
    return {};
  },
  async autoBuild(req, ctx) {
    await skaffoldOps.trigger(envOf(ctx), idOf(ctx), "build", req.state);
    return {};
  },
  async autoSync(req, ctx) {
    await skaffoldOps.trigger(envOf(ctx), idOf(ctx), "sync", req.state);
    return {};
  },
  async autoDeploy(req, ctx) {
    await skaffoldOps.trigger(envOf(ctx), idOf(ctx), "deploy", req.state);
    return {};
  },
  async handle(req, ctx) {
    await skaffoldOps.handle(envOf(ctx), idOf(ctx), req);
    return {};
  },
});
