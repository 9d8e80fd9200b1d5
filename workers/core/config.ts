/**
 * Every default of edgeplane, in one place. Runtime settings that admins change
 * (TTLs, hashing, registration) live in D1 and start from these values.
 */
/** A cluster, as configured by the operator (clusters are not created through the API). */
export interface ClusterConfig {
  id: string;
  type: "docker" | "kubernetes";
  /** Registry that locally built images are pushed to; unset on Docker means the local daemon. */
  devRegistryHost?: string;
  /** Whether the cluster has an ingress controller. */
  ingress?: boolean;
}

export const defaults = {
  /** Connect request bodies above this are refused with resource_exhausted. */
  maxRequestBytes: 1024 * 1024,
  accessTokenTtlMs: 60 * 60 * 1000,
  refreshTokenTtlMs: 7 * 24 * 60 * 60 * 1000,
  verificationCodeTtlMs: 10 * 60 * 1000,
  /** Wrong guesses allowed per verification or reset code before it is burnt. */
  verificationCodeMaxAttempts: 5,
  /** A refresh token reused within this window after rotation is a race, not theft. */
  refreshReuseGraceMs: 5_000,
  bcryptCost: 10,
  /** Firebase-style scrypt parameters, used when an admin picks scrypt without values. */
  scrypt: { rounds: 8, memCost: 14, p: 1, keyLen: 32 },
  /** Failed logins per identifier inside the window before logins are refused. */
  loginFailureLimit: 5,
  loginFailureWindowMs: 15 * 60 * 1000,
  allowRegister: false,
  publicName: "edgeplane",
  mailjetApiUrl: "https://api.mailjet.com",
  /** Outbox retry schedule: attempt n waits backoff[n-1] before the next try. */
  outboxBackoffMs: [60_000, 5 * 60_000, 30 * 60_000, 2 * 60 * 60_000, 12 * 60 * 60_000],
  pagination: { defaultLimit: 50, maxLimit: 1000 },
  jwtIssuer: "edgeplane",
  registry: {
    /** A container registry that does not answer within this is reported unavailable. */
    timeoutMs: 10_000,
    /** Manifests and configs are a few KiB; anything this large is not one. */
    maxBodyBytes: 4 * 1024 * 1024,
    /** Tag lists are paged by the registry; a repository with more pages than this is cut short. */
    maxTagPages: 20,
  },
  rollouts: {
    /** A rollout whose instances are not all ready this long after its resources exist is marked stuck. */
    readyTimeoutMs: 10 * 60 * 1000,
  },
  jobs: {
    /** A failed attempt is retried after this, doubling per retry up to the cap. */
    retryBackoffMs: 10_000,
    retryBackoffCapMs: 5 * 60 * 1000,
    /** A scheduled time found this late still runs; older ones are recorded as missed. */
    lateGraceMs: 2 * 60 * 1000,
    /** The deadline of an execution whose job sets no timeout: executions never stay ongoing forever. */
    defaultDeadlineMs: 60 * 60 * 1000,
    /** After an outage, at most this many missed times of a job are recorded. */
    maxMissedRecorded: 10,
  },
  sockets: {
    /**
     * A WebSocket (runner, subscriber, Execute session) that has not sent `ping` for this
     * long is closed with 4008 and handled as gone: a peer that vanished may never send a close.
     */
    silenceDeadlineMs: 90_000,
  },
  /**
   * What an environment keeps of runner reports: log lines and their UTF-8 bytes per environment
   * (the oldest go first when either is exceeded), the bytes of one line (a longer line is cut),
   * metric samples per instance.
   */
  runnerReports: { logLines: 10_000, logBytes: 8 * 1024 * 1024, logLineBytes: 16 * 1024, metricSamples: 120 },
  /** Developer environments (gitpod.v1.EnvironmentService). */
  gitpod: {
    /** An environment stopped this long is archived (Gitpod archives after 7 days stopped). */
    archiveAfterMs: 7 * 24 * 60 * 60 * 1000,
    /** Environment access and logs tokens are valid this long (Gitpod: 1 hour). */
    environmentTokenTtlMs: 60 * 60 * 1000,
    /** Gitpod list pages: a page size of 0 means 25, and at most 100 are served. */
    pageSize: { default: 25, max: 100 },
  },
  /** Clusters when the CLUSTERS var is unset: one local Docker host. */
  clusters: [{ id: "local", type: "docker" }] as readonly ClusterConfig[],
} as const;

/** The version of edgeplane (package.json's), reported as Rig's platform version. */
export const platformVersion = "0.1.0";
/** Rig's namespace template when an environment names none: one namespace per project, named after it. */
export const defaultNamespaceTemplate = "{{ .Project.Name }}";
