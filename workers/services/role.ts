/** api.v1.role.Service: roles, their permissions, and who holds them. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/role/service_pb";
import type { EntityID, Permission } from "../../proto/gen/api/v1/role/role_pb";
import { isGrantableAction } from "../core/actions";
import { requireGrantable } from "../auth/grants";
import { scoped } from "../auth/scopes";
import { requireExisting } from "../d1/exists";
import { metadataMap, updateMetadata } from "../d1/metadata";
import { deleteRoleAssignment, type Holder, hasRoleAssignment, insertRoleAssignment } from "../d1/role-assignments";
import { deleteRole, getRole, getRolePermissions, insertRole, listRolesPage, type RoleRow, updateRoleIfUnchanged } from "../d1/roles";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { aborted, alreadyExists, bounded, failedPrecondition, invalidArgument, notFound, quote } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { pageOf } from "../core/pagination";
import { defineService } from "./registry";

const role = scoped<{ roleId?: string }>("role", "roleId");
const anyRole = scoped("role");

/** Permissions as stored (and as the authorization check reads them). */
type StoredPermission = { action: string; scope: { resource: string; environment: string; project: string } };

const RESOURCE = /^(\*|[a-z_]+\/(\*|[A-Za-z0-9._@:-]+))$/;

function permissionOf(p: Permission, field: string): StoredPermission {
  if (!isGrantableAction(p.action)) throw invalidArgument(`${field}.action`, `${quote(p.action)} is not an action`);
  const resource = p.scope?.resource || "*";
  if (!RESOURCE.test(resource)) throw invalidArgument(`${field}.scope.resource`, 'must be "*", "<type>/*" or "<type>/<id>"');
  return { action: p.action, scope: { resource, environment: p.scope?.environment || "*", project: p.scope?.project || "*" } };
}

const samePermission = (a: StoredPermission, b: StoredPermission) => JSON.stringify(a) === JSON.stringify(b);

const roleMessage = (r: RoleRow) => ({
  roleId: r.id,
  permissions: JSON.parse(r.permissions) as StoredPermission[],
  metadata: metadataMap(r.metadata),
  createdAt: timestampFromMs(r.created_at),
  updatedAt: timestampFromMs(r.updated_at),
});

async function requireRole(env: Env, id: string): Promise<RoleRow> {
  const r = await getRole(env, id);
  if (!r) throw notFound(`role ${bounded(id)}`);
  return r;
}

/** The entity as stored in role_assignments, after checking it exists. */
async function entityOf(env: Env, e: EntityID | undefined): Promise<{ type: Holder; id: string }> {
  const k = e?.kind;
  const type = k?.case === "userId" ? "user" : k?.case === "serviceAccountId" ? "service_account" : k?.case === "groupId" ? "group" : undefined;
  if (!type || !k?.value) throw invalidArgument("entity_id", "set user_id, service_account_id or group_id");
  await requireExisting(env, type, k.value);
  return { type, id: k.value };
}

/**
 * Assigns the role as it was read (`permissions`, what the granter was checked against): a
 * Delete of either committed first leaves nothing behind, and a role deleted and created again
 * with other permissions is not granted. When nothing was inserted, says why.
 */
async function insertAssignment(env: Env, r: RoleRow, e: { type: Holder; id: string }): Promise<void> {
  if (await insertRoleAssignment(env, r, e, Date.now())) return;
  if (await hasRoleAssignment(env, r.id, e)) return;
  const now = await getRolePermissions(env, r.id);
  if (!now) throw notFound(`role ${bounded(r.id)}`);
  if (now.permissions !== r.permissions) throw aborted(`role ${r.id} changed meanwhile: assign it again`);
  await requireExisting(env, e.type, e.id);
}

export const roles = defineService(
  Service,
  {
    create: { action: "role:edit", scope: anyRole },
    delete: { action: "role:edit", scope: role },
    list: { action: "role:view", scope: anyRole },
    update: { action: "role:edit", scope: role },
    get: { action: "role:view", scope: role },
    assign: { action: "role:assign", scope: role },
    revoke: { action: "role:retract", scope: role },
  },
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      checkDnsLabel("role_id", req.roleId);
      const permissions = req.permissions.map((p, i) => permissionOf(p, `permissions[${i}]`));
      requireGrantable(principalOf(ctx), permissions, `role ${req.roleId}`);
      const now = Date.now();
      const inserted = await insertRole(env, { id: req.roleId, permissions: JSON.stringify(permissions) }, now);
      if (!inserted) throw alreadyExists(`role ${bounded(req.roleId)}`);
      return { role: roleMessage(await requireRole(env, req.roleId)) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const r = await requireRole(env, req.roleId);
      if (r.predefined) throw failedPrecondition(`${r.id} is a predefined role and cannot be deleted`);
      // One transaction: nobody keeps an assignment of a role that no longer exists.
      await deleteRole(env, r.id);
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const page = pageOf(req.pagination);
      return { roles: (await listRolesPage(env, page)).map(roleMessage) };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const r = await requireRole(env, req.roleId);
      let permissions = JSON.parse(r.permissions) as StoredPermission[];
      let metadata = r.metadata;
      for (const [i, u] of req.updates.entries()) {
        const f = u.update;
        const field = `updates[${i}]`;
        if ((f.case === "addPermission" || f.case === "removePermission") && r.predefined) {
          throw failedPrecondition(`the permissions of the predefined role ${r.id} cannot change`);
        }
        if (f.case === "addPermission") {
          const p = permissionOf(f.value, `${field}.add_permission`);
          requireGrantable(principalOf(ctx), [p], `${field}.add_permission`);
          if (!permissions.some((q) => samePermission(p, q))) permissions.push(p);
        } else if (f.case === "removePermission") {
          const p = permissionOf(f.value, `${field}.remove_permission`);
          if (!permissions.some((q) => samePermission(p, q))) throw notFound(`permission ${bounded(p.action)} in role ${bounded(r.id)}`);
          permissions = permissions.filter((q) => !samePermission(p, q));
        } else if (f.case === "setMetadata" || f.case === "deleteMetadataKey") {
          metadata = updateMetadata(metadata, f, field);
        } else {
          throw invalidArgument(`${field}.update`, "set one change per update");
        }
      }
      // Compare-and-swap on what was read: a concurrent Update or Delete is not overwritten.
      if (!(await updateRoleIfUnchanged(env, r, { permissions: JSON.stringify(permissions), metadata }, Date.now()))) {
        await requireRole(env, r.id);
        throw aborted(`role ${r.id} changed meanwhile: read it again and retry`);
      }
      return {};
    },

    async get(req, ctx) {
      return { role: roleMessage(await requireRole(envOf(ctx), req.roleId)) };
    },

    async assign(req, ctx) {
      const env = envOf(ctx);
      const r = await requireRole(env, req.roleId);
      const e = await entityOf(env, req.entityId);
      requireGrantable(principalOf(ctx), JSON.parse(r.permissions) as StoredPermission[], `role ${r.id}`);
      await insertAssignment(env, r, e);
      return {};
    },

    async revoke(req, ctx) {
      const env = envOf(ctx);
      await requireRole(env, req.roleId);
      const e = await entityOf(env, req.entityId);
      if (!(await deleteRoleAssignment(env, req.roleId, e))) throw notFound(`assignment of role ${bounded(req.roleId)} to ${e.type.replace("_", " ")} ${bounded(e.id)}`);
      return {};
    },
  },
);
