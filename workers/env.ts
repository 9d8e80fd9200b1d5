import type { EnvironmentDO, RolloutDO } from "../durable-objects/contract";
import type { ClusterConfig } from "./core/config";

/** Bindings of the edgeplane Worker, as declared in wrangler.toml. */
export interface Env {
  DB: D1Database;
  ENVIRONMENTS: DurableObjectNamespace<EnvironmentDO>;
  ROLLOUTS: DurableObjectNamespace<RolloutDO>;
  /** The dashboard's built files (wrangler.toml [assets]); index.html for any path without a file. */
  ASSETS: Fetcher;
  /** HMAC key for access and refresh tokens (a wrangler secret in production). */
  JWT_SECRET?: string;
  PUBLIC_NAME?: string;
  PUBLIC_LOGO_URL?: string;
  /** Mailjet's API origin; overridable so tests can answer for it. */
  MAILJET_API_URL?: string;
  /**
   * The clusters environments run on, as a JSON array of ClusterConfig (a string, or an
   * array when wrangler.toml gives it as TOML); unset means `defaults.clusters`.
   */
  CLUSTERS?: string | ClusterConfig[];
  /** The first retry delay of a failed cron job attempt, in ms (`defaults.jobs.retryBackoffMs` when unset). */
  JOB_RETRY_BACKOFF_MS?: string;
  /** How long a rollout's instances may take to become ready before it is stuck, in ms (`defaults.rollouts.readyTimeoutMs` when unset). */
  ROLLOUT_READY_TIMEOUT_MS?: string;
  /** How long a WebSocket may stay silent before it is taken as gone, in ms (`defaults.sockets.silenceDeadlineMs` when unset). */
  SOCKET_SILENCE_MS?: string;
}

declare global {
  namespace Cloudflare {
    interface GlobalProps {
      mainModule: typeof import("./index");
    }
    interface Env {
      DB: D1Database;
      ENVIRONMENTS: DurableObjectNamespace<EnvironmentDO>;
      ROLLOUTS: DurableObjectNamespace<RolloutDO>;
      ASSETS: Fetcher;
      TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
      MAILJET_API_URL?: string;
      JOB_RETRY_BACKOFF_MS?: string;
      SOCKET_SILENCE_MS?: string;
    }
  }
}
