import type { EnvironmentDO } from "../durable-objects/environment";
import type { RolloutDO } from "../durable-objects/rollout";

/** Bindings of the edgeplane Worker, as declared in wrangler.toml. */
export interface Env {
  DB: D1Database;
  ENVIRONMENTS: DurableObjectNamespace<EnvironmentDO>;
  ROLLOUTS: DurableObjectNamespace<RolloutDO>;
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
  /** How long a WebSocket may stay silent before it is taken as gone, in ms (`defaults.sockets.silenceDeadlineMs` when unset). */
  SOCKET_SILENCE_MS?: string;
}

/** A cluster, as configured by the operator (clusters are not created through the API). */
export interface ClusterConfig {
  id: string;
  type: "docker" | "kubernetes";
  /** Registry that locally built images are pushed to; unset on Docker means the local daemon. */
  devRegistryHost?: string;
  /** Whether the cluster has an ingress controller. */
  ingress?: boolean;
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
      TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
      MAILJET_API_URL?: string;
      JOB_RETRY_BACKOFF_MS?: string;
      SOCKET_SILENCE_MS?: string;
    }
  }
}
