/** api.v1.environment.Service: deployment targets, each owned by an EnvironmentDO. */
import type { Update } from "../../proto/gen/api/v1/environment/environment_pb";
import { Service } from "../../proto/gen/api/v1/environment/service_pb";
import { held } from "../../durable-objects/contract";
import { allows, type Principal } from "../auth/principal";
import { scoped } from "../auth/scopes";
import { defaultNamespaceTemplate, platformVersion } from "../core/config";
import { exists, requireExisting } from "../d1/exists";
import {
  environmentScope,
  type EnvironmentWrite,
  insertEnvironmentRows,
  listEnvironments,
  namespaceTemplates,
  undoInsertEnvironmentRows,
  updateEnvironment,
} from "../d1/environments";
import { deleteEnvironment } from "../d1/cascades";
import { existingProjects } from "../d1/projects";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { alreadyExists, bounded, failedPrecondition, invalidArgument, notFound, permissionDenied, quote } from "../core/errors";
import { checkDnsLabel, isDnsLabel } from "../core/names";
import { pageOf } from "../core/pagination";
import { clustersOf } from "./cluster";
import { defineService } from "./registry";

const environment = scoped<{ environmentId?: string }>("environment", "environmentId");
const viewScope = (id: string) => ({ environment: id, resource: `environment/${id}` });


/** A namespace template, parsed: literal text and the two values Rig offers. */
type Segment = string | { value: "project" | "environment" };

/** `{{ x }}`, with Go's optional trim markers `{{- ` and ` -}}`. */
const ACTION = /\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}/gs;
const VALUES: Record<string, "project" | "environment"> = { ".Project.Name": "project", ".Environment.Name": "environment" };

/** Parses a Go text/template restricted to `.Project.Name` and `.Environment.Name`. */
export function parseNamespaceTemplate(template: string, field = "namespace_template"): Segment[] {
  const out: Segment[] = [];
  const text = (s: string) => {
    if (s.includes("{{")) throw invalidArgument(field, "has a '{{' without its '}}'");
    if (s) out.push(s);
  };
  let last = 0;
  let trimNext = false;
  for (const m of template.matchAll(ACTION)) {
    let before = template.slice(last, m.index);
    if (trimNext) before = before.trimStart();
    if (m[1]) before = before.trimEnd();
    text(before);
    const value = VALUES[m[2]!];
    if (!value) throw invalidArgument(field, `uses ${quote(m[2])}: only {{ .Project.Name }} and {{ .Environment.Name }} are available`);
    out.push({ value });
    trimNext = !!m[3];
    last = m.index + m[0].length;
  }
  text(trimNext ? template.slice(last).trimStart() : template.slice(last));
  return out;
}

export function renderNamespace(segments: Segment[], projectName: string, environmentName: string): string {
  return segments.map((s) => (typeof s === "string" ? s : s.value === "project" ? projectName : environmentName)).join("");
}

/** Checks that a template renders to a DNS label (a Kubernetes namespace) for a typical project name. */
function checkNamespaceTemplate(template: string, environmentId: string): void {
  const sample = "my-project";
  const ns = renderNamespace(parseNamespaceTemplate(template), sample, environmentId);
  if (!isDnsLabel(ns)) {
    throw invalidArgument(
      "namespace_template",
      `renders to "${ns}" for a project named ${sample}, which is not a DNS label: use lowercase letters, digits and '-' around the values`,
    );
  }
}

/** What an environment's Update messages change. */
export interface EnvironmentState extends EnvironmentWrite {
  /** Projects the environment is explicitly active in (environment_projects). */
  projects: Set<string>;
}

/** Applies `updates` in order to `s`; project existence is checked afterwards, in one query. */
function applyUpdates(s: EnvironmentState, updates: Update[], field: string, environmentId: string): void {
  for (const [i, u] of updates.entries()) {
    const f = u.field;
    const at = (name: string) => `${field}[${i}].${name}`;
    switch (f.case) {
      case "default":
        s.isDefault = f.value;
        break;
      case "setGlobal":
        s.global = f.value;
        s.globalByDefault = false;
        break;
      case "addProject":
        if (!f.value) throw invalidArgument(at("add_project"), "is required");
        // Scoping an environment nobody scoped yet: from now on only the projects added.
        if (s.globalByDefault) s.global = s.globalByDefault = false;
        s.projects.add(f.value);
        s.added.add(f.value);
        s.removed.delete(f.value);
        break;
      case "removeProject":
        if (!f.value) throw invalidArgument(at("remove_project"), "is required");
        if (s.global) {
          throw failedPrecondition(`environment ${environmentId} is global (active in every project): set_global false before removing a project`);
        }
        if (!s.projects.has(f.value)) throw notFound(`project ${bounded(f.value)} among the active projects of environment ${bounded(environmentId)}`);
        s.projects.delete(f.value);
        s.removed.add(f.value);
        s.added.delete(f.value);
        break;
      default:
        throw invalidArgument(at("field"), "set one field per update");
    }
  }
}

/** Throws not_found for the first of `ids` that is not a project. */
async function requireProjects(env: Env, ids: Iterable<string>): Promise<void> {
  const wanted = [...ids];
  if (wanted.length === 0) return;
  const known = await existingProjects(env, wanted);
  const missing = wanted.find((id) => !known.has(id));
  if (missing !== undefined) throw notFound(`project ${bounded(missing)}`);
}

/** A new environment, checked: what `insertEnvironment` writes. */
export interface NewEnvironment {
  id: string;
  clusterId: string;
  namespaceTemplate: string;
  ephemeral: boolean;
  /** Its projects and flags; `added` are the projects to check and link. */
  state: EnvironmentState;
}

/**
 * Writes a checked new environment and initializes its object: Create's work once the request
 * is checked, and the way Gitpod's CreateEnvironment makes a developer environment's Rig
 * environment. Answers the environment's `created_at`.
 */
export async function insertEnvironment(env: Env, e: NewEnvironment): Promise<number> {
  const { id, state: s } = e;
  if (await exists(env, "environment", id)) throw alreadyExists(`environment ${bounded(id)}`);
  await requireProjects(env, s.added);
  const now = Date.now();
  await insertEnvironmentRows(env, e, s, now);
  try {
    await env.ENVIRONMENTS.getByName(id).initialize({ environmentId: id, ephemeral: e.ephemeral, createdAt: now });
  } catch (err) {
    // Without its object the environment cannot work: undo the rows of this incarnation so Create can be retried.
    await undoInsertEnvironmentRows(env, id, now);
    throw err;
  }
  return now;
}


const canEdit = (p: Principal, environmentId: string) => allows(p, "environment:edit", environment({ environmentId }));

export const environments = defineService(
  Service,
  {
    // The lesser action, so that developers (who hold only environment:edit:ephemeral) reach the
    // handler, which requires environment:edit as well for anything but an ephemeral environment.
    create: { action: "environment:edit:ephemeral", scope: environment },
    update: { action: "environment:edit", scope: environment },
    delete: { action: "environment:edit", scope: environment },
    // Both check each environment: List shows only those the caller may view.
    list: { action: "environment:view", scope: "any" },
    getNamespaces: { action: "environment:view", scope: "any" },
  },
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      const p = principalOf(ctx);
      const id = checkDnsLabel("environment_id", req.environmentId);
      const full = canEdit(p, id);
      if (!req.ephemeral && !full) {
        throw permissionDenied("environment:edit is not granted to this caller: without it, only ephemeral environments can be created");
      }
      const clusters = clustersOf(env);
      let clusterId = req.clusterId;
      if (!clusterId) {
        if (clusters.length !== 1) {
          throw invalidArgument("cluster_id", `is required when several clusters are configured (${clusters.map((c) => c.id).join(", ")})`);
        }
        clusterId = clusters[0]!.id;
      } else if (!clusters.some((c) => c.id === clusterId)) {
        throw notFound(`cluster ${bounded(clusterId)}`);
      }
      const template = req.namespaceTemplate || defaultNamespaceTemplate;
      checkNamespaceTemplate(template, id);
      // The specification's environments have no projects: every project may deploy to one
      // until Rig v1.9's add_project, remove_project or set_global scopes it.
      const s: EnvironmentState = { isDefault: false, global: true, globalByDefault: true, projects: new Set(), added: new Set(), removed: new Set() };
      applyUpdates(s, req.initializers, "initializers", id);
      // The default environment is what requests without one land in: not a developer's to move.
      if (s.isDefault && !full) throw permissionDenied("environment:edit is needed to make an environment the default");

      await insertEnvironment(env, { id, clusterId, namespaceTemplate: template, ephemeral: req.ephemeral, state: s });
      return {};
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const id = req.environmentId;
      const { flags: current, projects } = await environmentScope(env, id);
      if (!current) throw notFound(`environment ${bounded(id)}`);
      const s: EnvironmentState = {
        isDefault: current.is_default === 1,
        global: current.global === 1,
        globalByDefault: current.global_by_default === 1,
        projects: new Set(projects),
        added: new Set(),
        removed: new Set(),
      };
      applyUpdates(s, req.updates, "updates", id);
      await requireProjects(env, s.added);
      if (!(await updateEnvironment(env, id, s, Date.now()))) throw notFound(`environment ${bounded(id)}`);
      await env.ENVIRONMENTS.getByName(id).publish("environment.updated", {
        default: s.isDefault,
        global: s.global,
        addedProjects: [...s.added],
        removedProjects: [...s.removed],
      });
      return {};
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const id = req.environmentId;
      await requireExisting(env, "environment", id);
      const object = env.ENVIRONMENTS.getByName(id);
      // The object owns what runs in the environment, so it is the one to ask.
      using rollouts = held(object.rollouts());
      const capsules = await rollouts.deployed();
      if (capsules.length > 0 && !req.force) {
        const names = capsules.slice(0, 10).map((c) => `${c.projectId}/${c.capsuleId}`).join(", ");
        throw failedPrecondition(
          `environment ${id} still has ${capsules.length} capsule(s) deployed (${names}${capsules.length > 10 ? ", ..." : ""}): remove them first, or delete with force`,
        );
      }
      if (!(await deleteEnvironment(env, id))) throw notFound(`environment ${bounded(id)}`);
      // If this fails the rows are gone already; a later Create of the same name wipes the stale object first.
      await object.destroy();
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const p = principalOf(ctx);
      const page = pageOf(req.pagination);
      const filter = req.projectFilter;
      const { rows, projectFound } = await listEnvironments(env, { excludeEphemeral: req.excludeEphemeral, projectId: filter, descending: page.descending });
      if (filter && !projectFound) throw notFound(`project ${bounded(filter)}`);
      // Permissions may be scoped to single environments, which SQL cannot see: filter, then page.
      // Environments number in the hundreds at most, so reading them all is cheap.
      const visible = rows.filter((r) => allows(p, "environment:view", viewScope(r.id)));
      return {
        environments: visible.slice(page.offset, page.offset + page.limit).map((r) => ({
          environmentId: r.id,
          default: r.is_default === 1,
          // No operator runs in the clusters yet; the runner protocol will report its version.
          operatorVersion: "",
          clusterId: r.cluster_id,
          namespaceTemplate: r.namespace_template,
          ephemeral: r.ephemeral === 1,
          activeProjects: JSON.parse(r.projects) as string[],
          global: r.global === 1,
        })),
        platformVersion,
      };
    },

    async getNamespaces(req, ctx) {
      const env = envOf(ctx);
      const p = principalOf(ctx);
      const pairs = req.projectEnvs;
      if (pairs.length === 0) return { namespaces: [] };
      for (const pe of pairs) {
        if (!allows(p, "environment:view", viewScope(pe.environmentId))) {
          throw permissionDenied(`environment:view on environment ${pe.environmentId} is not granted to this caller`);
        }
      }
      const { templates, projects } = await namespaceTemplates(
        env,
        pairs.map((pe) => pe.environmentId),
        pairs.map((pe) => pe.projectId),
      );
      return {
        namespaces: pairs.map((pe, i) => {
          const template = templates.get(pe.environmentId);
          if (template === undefined) throw notFound(`environment ${bounded(pe.environmentId)}`);
          if (!projects.has(pe.projectId)) throw notFound(`project ${bounded(pe.projectId)}`);
          const namespace = renderNamespace(parseNamespaceTemplate(template, `project_envs[${i}]`), pe.projectId, pe.environmentId);
          // Create checked the template against a short project name; a long one can still overflow.
          if (!isDnsLabel(namespace)) {
            throw failedPrecondition(
              `the namespace of project ${pe.projectId} in environment ${pe.environmentId} would be ${quote(namespace)}, which is not a DNS label (at most 63 characters): shorten the environment's namespace_template`,
            );
          }
          return { projectId: pe.projectId, environmentId: pe.environmentId, namespace };
        }),
      };
    },
  },
);
