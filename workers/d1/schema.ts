/**
 * D1 schema: what is queried across objects (identity, organization).
 * Times are integer milliseconds since the epoch. `npx drizzle-kit generate` turns
 * changes here into a new SQL file under migrations/.
 */
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const users = sqliteTable(
  "users",
  {
    id: text("id").primaryKey(),
    /** Lower-cased; unique when set. */
    email: text("email"),
    username: text("username"),
    phoneNumber: text("phone_number"),
    /** model.HashingInstance as protobuf JSON; null for users created without a password. */
    passwordHash: text("password_hash"),
    firstName: text("first_name").notNull().default(""),
    lastName: text("last_name").notNull().default(""),
    emailVerified: integer("email_verified", { mode: "boolean" }).notNull().default(false),
    phoneVerified: integer("phone_verified", { mode: "boolean" }).notNull().default(false),
    /** "signup" or "system". */
    registerMethod: text("register_method").notNull(),
    registerLoginType: integer("register_login_type").notNull().default(0),
    createdBy: text("created_by").notNull().default(""),
    /** Metadata entries as a JSON object of base64 values. */
    metadata: text("metadata").notNull().default("{}"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    newSessionsSince: integer("new_sessions_since").notNull().default(0),
  },
  (t) => [
    uniqueIndex("users_email").on(t.email),
    uniqueIndex("users_username").on(t.username),
    uniqueIndex("users_phone_number").on(t.phoneNumber),
  ],
);

export const serviceAccounts = sqliteTable(
  "service_accounts",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    clientId: text("client_id").notNull(),
    /** SHA-256 of the secret, hex: the secret is 256 random bits, so a slow hash adds nothing. */
    secretHash: text("secret_hash").notNull(),
    managed: integer("managed", { mode: "boolean" }).notNull().default(false),
    /** model.Author as JSON. */
    createdBy: text("created_by").notNull().default("{}"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("service_accounts_name").on(t.name), uniqueIndex("service_accounts_client_id").on(t.clientId)],
);

/**
 * One row per login. Access tokens name their session and are refused once it is revoked;
 * refresh tokens carry the generation they were minted at, so rotation is a compare-and-swap.
 */
export const sessions = sqliteTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    subjectId: text("subject_id").notNull(),
    /** "user" or "service_account". */
    subjectType: text("subject_type").notNull(),
    loginType: integer("login_type").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    renewedAt: integer("renewed_at"),
    revokedAt: integer("revoked_at"),
    refreshGeneration: integer("refresh_generation").notNull().default(0),
    refreshRotatedAt: integer("refresh_rotated_at"),
    /** Where the login came from, as Cloudflare saw it. */
    country: text("country").notNull().default(""),
    postalCode: integer("postal_code").notNull().default(0),
  },
  (t) => [index("sessions_subject").on(t.subjectId, t.createdAt)],
);

export const groups = sqliteTable("groups", {
  id: text("id").primaryKey(),
  createdAt: integer("created_at").notNull(),
  createdBy: text("created_by").notNull().default("{}"),
  updatedAt: integer("updated_at").notNull(),
  metadata: text("metadata").notNull().default("{}"),
});

export const groupMembers = sqliteTable(
  "group_members",
  {
    groupId: text("group_id").notNull(),
    memberId: text("member_id").notNull(),
    /** "user" or "service_account". */
    memberType: text("member_type").notNull(),
    joinedAt: integer("joined_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.memberId] }), index("group_members_member").on(t.memberId)],
);

export const roles = sqliteTable("roles", {
  id: text("id").primaryKey(),
  /** api.v1.role.Permission list as JSON. */
  permissions: text("permissions").notNull().default("[]"),
  predefined: integer("predefined", { mode: "boolean" }).notNull().default(false),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
  metadata: text("metadata").notNull().default("{}"),
});

export const roleAssignments = sqliteTable(
  "role_assignments",
  {
    roleId: text("role_id").notNull(),
    /** "user", "service_account" or "group". */
    subjectType: text("subject_type").notNull(),
    subjectId: text("subject_id").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.roleId, t.subjectType, t.subjectId] }), index("role_assignments_subject").on(t.subjectId)],
);

/** Installation-wide settings documents (protobuf JSON), one row per key. */
export const settings = sqliteTable("settings", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/** Email verification and password reset codes: one live code per user and purpose. */
export const verificationCodes = sqliteTable(
  "verification_codes",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    /** api.v1.user.VerificationType number. */
    type: integer("type").notNull(),
    /** HMAC-SHA256 of the code under the installation key, hex. */
    codeHash: text("code_hash").notNull(),
    sentAt: integer("sent_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastAttemptAt: integer("last_attempt_at"),
  },
  (t) => [uniqueIndex("verification_codes_user_type").on(t.userId, t.type)],
);

/** Every email leaves through here, so a failed send is retried and visible, never lost. */
export const outbox = sqliteTable(
  "outbox",
  {
    id: text("id").primaryKey(),
    channel: text("channel").notNull(),
    recipient: text("recipient").notNull(),
    subject: text("subject").notNull(),
    body: text("body").notNull(),
    /** "pending", "sent", "failed" (gave up) or "logged" (no provider: printed to the dev log). */
    status: text("status").notNull(),
    provider: text("provider").notNull().default(""),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    createdAt: integer("created_at").notNull(),
    nextAttemptAt: integer("next_attempt_at"),
    sentAt: integer("sent_at"),
  },
  (t) => [index("outbox_due").on(t.status, t.nextAttemptAt)],
);

/** Failed logins per identifier, for throttling guessing. */
export const loginFailures = sqliteTable("login_failures", {
  identifier: text("identifier").primaryKey(),
  failures: integer("failures").notNull(),
  windowStartedAt: integer("window_started_at").notNull(),
});

/** Installation key used when no JWT_SECRET secret is configured (local dev). */
export const installationKeys = sqliteTable("installation_keys", {
  id: text("id").primaryKey(),
  secret: text("secret").notNull(),
  createdAt: integer("created_at").notNull(),
});

export const projects = sqliteTable("projects", {
  id: text("id").primaryKey(),
  /** Deprecated in Rig's API (the id is the name) but still settable. */
  name: text("name").notNull().default(""),
  installationId: text("installation_id").notNull(),
  /** SPKI public key, PEM. */
  publicKey: text("public_key").notNull(),
  /** PKCS#8 private key, encrypted under the installation key; never leaves the server. */
  privateKey: text("private_key").notNull(),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

/** Docker registries a project pulls images from (api.v1.project.settings). */
export const dockerRegistries = sqliteTable(
  "docker_registries",
  {
    id: text("id").primaryKey(),
    projectId: text("project_id").notNull(),
    host: text("host").notNull(),
    /** Credentials or auth string, encrypted under the installation key. */
    secret: text("secret").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("docker_registries_project_host").on(t.projectId, t.host)],
);

/** Rig environments (deployment targets). Each has an EnvironmentDO named by its id. */
export const environments = sqliteTable("environments", {
  id: text("id").primaryKey(),
  clusterId: text("cluster_id").notNull(),
  namespaceTemplate: text("namespace_template").notNull(),
  isDefault: integer("is_default", { mode: "boolean" }).notNull().default(false),
  ephemeral: integer("ephemeral", { mode: "boolean" }).notNull().default(false),
  /** Active in every project; otherwise only in those of environment_projects. */
  global: integer("global", { mode: "boolean" }).notNull().default(false),
  /**
   * Global only because no client has scoped it: created without any project initializer, as
   * clients of the specification's API (which has no projects on environments) create them.
   * The first add_project then scopes it to that project, as Rig v1.9's clients expect.
   */
  globalByDefault: integer("global_by_default", { mode: "boolean" }).notNull().default(false),
  createdAt: integer("created_at").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const environmentProjects = sqliteTable(
  "environment_projects",
  {
    environmentId: text("environment_id").notNull(),
    projectId: text("project_id").notNull(),
  },
  (t) => [primaryKey({ columns: [t.environmentId, t.projectId] }), index("environment_projects_project").on(t.projectId)],
);

/** Capsules: named per project; their rollouts live in the EnvironmentDOs of the environments they run in. */
export const capsules = sqliteTable(
  "capsules",
  {
    projectId: text("project_id").notNull(),
    id: text("id").notNull(),
    /** model.Author as JSON. */
    updatedBy: text("updated_by").notNull().default("{}"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.id] })],
);

/** Images added to a capsule, by normalized reference (`registry/repository:tag@digest`). */
export const images = sqliteTable(
  "images",
  {
    projectId: text("project_id").notNull(),
    capsuleId: text("capsule_id").notNull(),
    id: text("id").notNull(),
    repository: text("repository").notNull(),
    tag: text("tag").notNull().default(""),
    digest: text("digest").notNull().default(""),
    /** api.v1.capsule.Origin as protobuf JSON. */
    origin: text("origin").notNull().default("{}"),
    labels: text("labels").notNull().default("{}"),
    /** model.Author as JSON. */
    createdBy: text("created_by").notNull().default("{}"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.capsuleId, t.id] })],
);

/**
 * The last rollout id of each capsule. GetRollout, AbortRollout and StopRollout name a rollout
 * by project, capsule and id alone, so ids are unique per capsule across its environments and
 * are allocated here, in one atomic statement, rather than by each environment's object.
 */
export const rolloutCounters = sqliteTable(
  "rollout_counters",
  {
    projectId: text("project_id").notNull(),
    capsuleId: text("capsule_id").notNull(),
    lastId: integer("last_id").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.capsuleId] })],
);

/**
 * The rollout each capsule's environment wants running, mirrored from the EnvironmentDO
 * that owns it, so that questions across environments (may this image be deleted?) are
 * one query. Written by the object before it commits a deploy, deleted by StopRollout.
 */
export const deployments = sqliteTable(
  "deployments",
  {
    projectId: text("project_id").notNull(),
    capsuleId: text("capsule_id").notNull(),
    environmentId: text("environment_id").notNull(),
    rolloutId: integer("rollout_id").notNull(),
    imageId: text("image_id").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.projectId, t.capsuleId, t.environmentId] }), index("deployments_image").on(t.projectId, t.capsuleId, t.imageId)],
);

/**
 * When each cron job runs next, per environment: the Cron Trigger finds the environments with
 * due jobs here and wakes their objects, which own the jobs and their executions. Written by
 * the EnvironmentDO when a rollout changes the jobs and after each run.
 */
export const cronSchedules = sqliteTable(
  "cron_schedules",
  {
    environmentId: text("environment_id").notNull(),
    projectId: text("project_id").notNull(),
    capsuleId: text("capsule_id").notNull(),
    jobName: text("job_name").notNull(),
    /** Null for a schedule that never fires (`0 0 31 2 *`). */
    nextRunAt: integer("next_run_at"),
  },
  (t) => [primaryKey({ columns: [t.environmentId, t.projectId, t.capsuleId, t.jobName] }), index("cron_schedules_due").on(t.nextRunAt)],
);

/**
 * Developer environments (gitpod.v1.EnvironmentService), mirrored from the EnvironmentDO that
 * owns each, so that ListEnvironments is one query: its filters are columns, its items the
 * object's last snapshot. Written by the object after every change; `revision` keeps a slower
 * write of an older state from overwriting a newer one. Removed with the environment's rows.
 */
export const devEnvironments = sqliteTable(
  "dev_environments",
  {
    /** A UUIDv7, so ordering by id is ordering by creation. Also the id of its Rig environment. */
    id: text("id").primaryKey(),
    creatorId: text("creator_id").notNull(),
    projectId: text("project_id").notNull().default(""),
    runnerId: text("runner_id").notNull().default(""),
    /** `status.phase` as its EnvironmentPhase enum key without the prefix (RUNNING, STOPPED, …). */
    phase: text("phase").notNull(),
    /** When the stopped environment counts as archived; null while it is not stopped. */
    archiveAt: integer("archive_at"),
    revision: integer("revision").notNull(),
    /** gitpod.v1.Environment in protobuf JSON, without `metadata.archivedAt` (derived from archive_at when read). */
    environment: text("environment").notNull(),
  },
  (t) => [index("dev_environments_phase").on(t.phase)],
);

/**
 * Where each automation lives (gitpod.v1.EnvironmentAutomationService): GetService, GetTask,
 * GetTaskExecution and the rest name only the id, and lists without an environment filter span
 * environments. The EnvironmentDO holds the automations themselves; a row here is written before
 * the object creates its item and removed after the object deleted it, so a row whose item is
 * gone only costs a not_found from the object.
 */
export const automationIndex = sqliteTable(
  "automation_index",
  {
    /** The UUID of a service, task or task execution. */
    id: text("id").primaryKey(),
    environmentId: text("environment_id").notNull(),
    /** "service", "task" or "execution". */
    kind: text("kind").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("automation_index_kind").on(t.kind, t.environmentId), index("automation_index_environment").on(t.environmentId)],
);
