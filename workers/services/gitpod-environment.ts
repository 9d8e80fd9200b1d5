/**
 * gitpod.v1.EnvironmentService: developer environments. Each is an ephemeral Rig
 * environment, so changing one needs `environment:edit:ephemeral`.
 *
 * The environment's EnvironmentDO owns it (phases, spec, status; durable-objects/
 * dev/store.ts) and a runner runs its machine; D1's `dev_environments` mirrors each
 * one for ListEnvironments. Gitpod's SDK is the client this is measured against: see
 * ../shared/research/gitpod-api.md for what it sends and expects.
 */
import { create, fromJsonString } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { unwrap } from "../core/outcome";
import { held } from "../../durable-objects/contract";
import {
  EnvironmentMetadataSchema,
  EnvironmentPhase,
  EnvironmentRole,
  EnvironmentSchema,
  EnvironmentService,
  type EnvironmentSpec,
  EnvironmentSpec_MachineSchema,
  EnvironmentSpecSchema,
  type ListEnvironmentsRequest,
  ListEnvironmentsRequest_ArchivalStatus as Archival,
  ListEnvironmentsRequest_SortField as SortField,
} from "../../proto/gen/gitpod/v1/environment_pb";
import { Principal } from "../../proto/gen/gitpod/v1/identity_pb";
import { SortOrder } from "../../proto/gen/gitpod/v1/pagination_pb";
import { CountResponseRelation } from "../../proto/gen/gitpod/v1/count_pb";
import { scoped } from "../auth/scopes";
import { defaultNamespaceTemplate } from "../core/config";
import type { Env } from "../env";
import { checkSpec, checkUpdate, clusterOfClass, defaultName, environmentClasses, RUNNER_KIND } from "../gitpod/environments";
import { mintEnvironmentToken } from "../core/environment-tokens";
import { installationHmacKey } from "../d1/installation-keys";
import { checkUuid, uuidv7 } from "../core/gitpod-ids";
import { gitpodPage, pageToken } from "../core/gitpod-pages";
import { envOf, principalOf } from "./context";
import { bounded, invalidArgument, notFound } from "../core/errors";
import { clustersOf } from "./cluster";
import { type DevEnvironmentFilter, listDevEnvironments } from "../d1/dev-environments";
import { deleteEnvironment } from "../d1/cascades";
import { type EnvironmentState, insertEnvironment } from "./environment";
import { defineService } from "./registry";
import { searchPattern } from "../core/pagination";
import { exists } from "../d1/exists";

const environment = scoped<{ environmentId?: string }>("environment", "environmentId");
const anyEnvironment = scoped("environment");
const view = { action: "environment:view", scope: environment } as const;
const edit = { action: "environment:edit:ephemeral", scope: environment } as const;

/** The object of an existing developer environment: not_found for anything else, without waking an object for it. */
async function devObject(env: Env, environmentId: string) {
  const id = checkUuid("environment_id", environmentId);
  if (!(await exists(env, "dev_environment", id))) throw notFound(`environment ${bounded(id)}`);
  return { id, object: env.ENVIRONMENTS.getByName(id) };
}

/** What the object of an existing developer environment answers for EnvironmentService, for `using`. */
async function devApi(env: Env, environmentId: string) {
  const { object } = await devObject(env, environmentId);
  return held(object.dev());
}

interface CreateInput {
  spec?: EnvironmentSpec;
  name?: string;
  sessionId: string;
  annotations: Record<string, string>;
  projectId?: string;
}

/**
 * Create and CreateFromProject: the environment's Rig side is made the way api.v1.environment
 * Create makes an ephemeral environment (active in the project it came from, or, without
 * one, in every project the caller may deploy to), then its object takes it from there.
 */
async function createDev(ctx: HandlerContext, input: CreateInput) {
  const env = envOf(ctx);
  const p = principalOf(ctx);
  const spec = input.spec ?? create(EnvironmentSpecSchema);
  checkSpec(spec);
  if (spec.desiredPhase !== EnvironmentPhase.UNSPECIFIED && spec.desiredPhase !== EnvironmentPhase.RUNNING) {
    throw invalidArgument("spec.desired_phase", "must be running or left out: an environment is created to run (stop it afterwards)");
  }
  if (input.name !== undefined && input.name.length > 80) throw invalidArgument("name", "must be at most 80 characters");
  if (input.sessionId) checkUuid("session_id", input.sessionId);
  const { cluster, classId } = await clusterOfClass(clustersOf(env), spec.machine?.class ?? "");
  spec.machine ??= create(EnvironmentSpec_MachineSchema);
  spec.machine.class = classId;

  const id = uuidv7();
  const project = input.projectId ? new Set([input.projectId]) : new Set<string>();
  // Without a project it is global as a Rig environment created without one is (environment.ts).
  const state: EnvironmentState = {
    isDefault: false,
    global: !input.projectId,
    globalByDefault: !input.projectId,
    projects: project,
    added: new Set(project),
    removed: new Set(),
  };
  const createdAt = await insertEnvironment(env, { id, clusterId: cluster.id, namespaceTemplate: defaultNamespaceTemplate, ephemeral: true, state });
  const first = spec.content?.initializer?.specs[0]?.spec;
  const metadata = create(EnvironmentMetadataSchema, {
    name: input.name || defaultName(spec, id),
    annotations: input.annotations,
    creator: { id: p.subjectId, principal: p.subjectType === "user" ? Principal.USER : Principal.SERVICE_ACCOUNT },
    originalContextUrl: first?.case === "contextUrl" ? first.value.url : "",
    createdAt: timestampFromMs(createdAt),
    lastStartedAt: timestampFromMs(createdAt),
    projectId: input.projectId ?? "",
    sessionId: input.sessionId,
  });
  const object = env.ENVIRONMENTS.getByName(id);
  try {
    using dev = held(object.dev());
    return { environment: unwrap(await dev.create(metadata, spec)) };
  } catch (err) {
    // Half an environment helps no one: the Rig side goes too, so nothing is left behind.
    await deleteEnvironment(env, id);
    await object.destroy();
    throw err;
  }
}

/** Archived environments are listed only when asked for, as Gitpod's own list does; an unknown value is refused. */
const ARCHIVAL: Partial<Record<Archival, "active" | "archived" | "all">> = {
  [Archival.UNSPECIFIED]: "active",
  [Archival.ACTIVE]: "active",
  [Archival.ARCHIVED]: "archived",
  [Archival.ALL]: "all",
};

/** ListEnvironments' filter, checked in the order of its fields. */
function filterOf(req: ListEnvironmentsRequest, now: number): DevEnvironmentFilter {
  const f = req.filter;
  const anyOf = (field: string, values: readonly string[] | undefined, uuid = false) => {
    if (!values?.length) return undefined;
    if (values.length > 25) throw invalidArgument(`filter.${field}`, "may list at most 25 values");
    // Ids are stored lower-cased, as checkUuid returns them.
    return uuid ? values.map((v, i) => checkUuid(`filter.${field}[${i}]`, v)) : [...values];
  };
  const archival = ARCHIVAL[f?.archivalStatus ?? Archival.UNSPECIFIED];
  if (!archival) throw invalidArgument("filter.archival_status", `has no value ${f?.archivalStatus}`);
  return {
    phases: anyOf("status_phases", f?.statusPhases.map((p) => EnvironmentPhase[p])),
    creatorIds: anyOf("creator_ids", f?.creatorIds, true),
    runnerIds: anyOf("runner_ids", f?.runnerIds, true),
    projectIds: anyOf("project_ids", f?.projectIds),
    sessionIds: anyOf("session_ids", f?.sessionIds),
    // Every runner of edgeplane is a remote one; environments have no role but the default one and no lockdown.
    none:
      (!!f?.runnerKinds.length && !f.runnerKinds.includes(RUNNER_KIND)) ||
      (!!f?.roles.length && !f.roles.some((r) => r === EnvironmentRole.DEFAULT || r === EnvironmentRole.UNSPECIFIED)) ||
      !!f?.lockdownBefore,
    idBefore: f?.createdBefore ? uuidv7(timestampDate(f.createdBefore).getTime()).slice(0, 14) : undefined,
    search: f?.search ? searchPattern("filter.search", f.search, true) : undefined,
    archival,
    now,
  };
}

export const gitpodEnvironments = defineService(
  EnvironmentService,
  {
    getEnvironment: view,
    listEnvironments: { action: "environment:view", scope: anyEnvironment },
    listEnvironmentClasses: { action: "environment:view", scope: anyEnvironment },
    createEnvironment: { action: "environment:edit:ephemeral", scope: anyEnvironment },
    createEnvironmentFromProject: { action: "environment:edit:ephemeral", scope: anyEnvironment },
    startEnvironment: edit,
    stopEnvironment: edit,
    updateEnvironment: edit,
    deleteEnvironment: edit,
    createEnvironmentLogsToken: view,
    createEnvironmentAccessToken: edit,
    markEnvironmentActive: edit,
    unarchiveEnvironment: edit,
  },
  {
    createEnvironment(req, ctx) {
      return createDev(ctx, { spec: req.spec, name: req.name, sessionId: req.sessionId, annotations: req.annotations });
    },

    async createEnvironmentFromProject(req, ctx) {
      // Gitpod's projects are Rig's here: the environment is active in that project.
      if (!req.projectId) throw invalidArgument("project_id", "is required");
      return createDev(ctx, { spec: req.spec, name: req.name, sessionId: req.sessionId, annotations: req.annotations, projectId: req.projectId });
    },

    async getEnvironment(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      return { environment: unwrap(await dev.get()) };
    },

    async listEnvironments(req, ctx) {
      const env = envOf(ctx);
      // The token holds the id the previous page ended at.
      const page = gitpodPage<{ after: string }>(ctx, req.pagination, (c) => typeof c.after === "string" && c.after !== "");
      const after = page.cursor?.after ?? "";
      const sort = req.sort ?? { field: SortField.UNSPECIFIED, order: SortOrder.UNSPECIFIED };
      if (sort.field === SortField.ARCHIVED_AT) throw invalidArgument("sort.field", "only SORT_FIELD_ID is supported");
      const ascending = sort.order === SortOrder.ASC;
      const now = Date.now();
      // The count is asked for on the first page only.
      const counted = req.count?.include === true && !after;
      const { rows: found, count } = await listDevEnvironments(env, filterOf(req, now), { after, ascending, size: page.size, counted });
      const items = found.slice(0, page.size).map((r) => {
        const e = fromJsonString(EnvironmentSchema, r.environment);
        if (r.archive_at !== null && r.archive_at <= now) e.metadata!.archivedAt = timestampFromMs(r.archive_at);
        return e;
      });
      return {
        environments: items,
        pagination: { nextToken: found.length > page.size ? pageToken({ after: items.at(-1)!.id }) : "" },
        ...(count !== null ? { count: { value: count, relation: CountResponseRelation.EQ } } : {}),
      };
    },

    async listEnvironmentClasses(req, ctx) {
      // The token holds the offset of the page it starts.
      const page = gitpodPage<{ after: string }>(ctx, req.pagination, (c) => typeof c.after === "string" && /^\d+$/.test(c.after) && Number.isSafeInteger(Number(c.after)));
      const f = req.filter;
      const offset = Number(page.cursor?.after ?? 0);
      // Classes are the configured clusters: enabled, usable by anyone who may create environments, of no particular runner.
      const none = f?.enabled === false || f?.canCreateEnvironments === false || !!f?.runnerIds.length || !!f?.runnerProviders.length ||
        (!!f?.runnerKinds.length && !f.runnerKinds.includes(RUNNER_KIND));
      const all = none ? [] : await environmentClasses(clustersOf(envOf(ctx)));
      const items = all.slice(offset, offset + page.size);
      return { environmentClasses: items, pagination: { nextToken: offset + page.size < all.length ? pageToken({ after: String(offset + page.size) }) : "" } };
    },

    async startEnvironment(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      unwrap(await dev.start());
      return {};
    },

    async stopEnvironment(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      unwrap(await dev.stop());
      return {};
    },

    async unarchiveEnvironment(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      unwrap(await dev.unarchive());
      return {};
    },

    async updateEnvironment(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      checkUpdate(req);
      unwrap(await dev.update(req));
      return {};
    },

    async markEnvironmentActive(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      const source = req.activitySignal?.source ?? "";
      if (source.length < 3 || source.length > 80) throw invalidArgument("activity_signal.source", "must be 3 to 80 characters");
      const at = req.activitySignal?.timestamp ? timestampDate(req.activitySignal.timestamp).getTime() : Date.now();
      unwrap(await dev.markActive(source, at));
      return {};
    },

    async deleteEnvironment(req, ctx) {
      using dev = await devApi(envOf(ctx), req.environmentId);
      unwrap(await dev.delete(req.force));
      return {};
    },

    async createEnvironmentAccessToken(req, ctx) {
      const env = envOf(ctx);
      const { id } = await devObject(env, req.environmentId);
      return { accessToken: await mintEnvironmentToken(await installationHmacKey(env), "access", id) };
    },

    async createEnvironmentLogsToken(req, ctx) {
      const env = envOf(ctx);
      const { id } = await devObject(env, req.environmentId);
      return { accessToken: await mintEnvironmentToken(await installationHmacKey(env), "logs", id) };
    },
  },
);
