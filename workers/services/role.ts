/** api.v1.role.Service: roles, their permissions, and who holds them. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/role/service_pb";
import type { EntityID, Permission } from "../../proto/gen/api/v1/role/role_pb";
import { isGrantableAction } from "../core/actions";
import { adminGuard } from "../auth/admins";
import { requireGrantable } from "../auth/grants";
import { scoped } from "../auth/scopes";
import { type Entity, entityTable, requireExisting } from "../d1/exists";
import { metadataMap, updateMetadata } from "../d1/metadata";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { aborted, alreadyExists, bounded, failedPrecondition, invalidArgument, notFound, quote } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { pageOf } from "../core/pagination";
import { defineService } from "./registry";

const role = scoped<{ roleId?: string }>("role", "roleId");
const anyRole = scoped("role");

interface RoleRow {
  id: string;
  permissions: string;
  predefined: number;
  metadata: string;
  created_at: number;
  updated_at: number;
}

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

async function getRole(env: Env, id: string): Promise<RoleRow> {
  const r = await env.DB.prepare("SELECT * FROM roles WHERE id = ?").bind(id).first<RoleRow>();
  if (!r) throw notFound(`role ${bounded(id)}`);
  return r;
}

/** The entity as stored in role_assignments, after checking it exists. */
async function entityOf(env: Env, e: EntityID | undefined): Promise<{ type: Entity; id: string }> {
  const k = e?.kind;
  const type = k?.case === "userId" ? "user" : k?.case === "serviceAccountId" ? "service_account" : k?.case === "groupId" ? "group" : undefined;
  if (!type || !k?.value) throw invalidArgument("entity_id", "set user_id, service_account_id or group_id");
  await requireExisting(env, type, k.value);
  return { type, id: k.value };
}

/**
 * Assigns the role, as it was read (`permissions`, what the granter was checked against), in
 * one statement that also requires the entity: a Delete of either committed first leaves
 * nothing behind, and a role deleted and created again with other permissions is not granted.
 */
async function insertAssignment(env: Env, r: RoleRow, e: { type: Entity; id: string }): Promise<void> {
  const res = await env.DB.prepare(
    `INSERT OR IGNORE INTO role_assignments (role_id, subject_type, subject_id, created_at)
     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM roles WHERE id = ?1 AND permissions = ?5)
       AND EXISTS (SELECT 1 FROM ${entityTable(e.type)} WHERE id = ?3)`,
  )
    .bind(r.id, e.type, e.id, Date.now(), r.permissions)
    .run();
  if (res.meta.changes === 1) return;
  const held = await env.DB.prepare("SELECT 1 AS one FROM role_assignments WHERE role_id = ? AND subject_type = ? AND subject_id = ?").bind(r.id, e.type, e.id).first();
  if (held) return;
  const now = await env.DB.prepare("SELECT permissions FROM roles WHERE id = ?").bind(r.id).first<{ permissions: string }>();
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
      const inserted = await env.DB.prepare(
        "INSERT INTO roles (id, permissions, predefined, created_at, updated_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
      )
        .bind(req.roleId, JSON.stringify(permissions), now, now)
        .run();
      if (inserted.meta.changes === 0) throw alreadyExists(`role ${bounded(req.roleId)}`);
      return { role: roleMessage(await getRole(env, req.roleId)) };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const r = await getRole(env, req.roleId);
      if (r.predefined) throw failedPrecondition(`${r.id} is a predefined role and cannot be deleted`);
      // One transaction: nobody keeps an assignment of a role that no longer exists.
      await env.DB.batch([
        env.DB.prepare("DELETE FROM role_assignments WHERE role_id = ?").bind(r.id),
        env.DB.prepare("DELETE FROM roles WHERE id = ?").bind(r.id),
      ]);
      return {};
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const page = pageOf(req.pagination);
      const { results } = await env.DB.prepare(`SELECT * FROM roles ORDER BY id ${page.descending ? "DESC" : "ASC"} LIMIT ? OFFSET ?`)
        .bind(page.limit, page.offset)
        .all<RoleRow>();
      return { roles: results.map(roleMessage) };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const r = await getRole(env, req.roleId);
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
      const res = await env.DB.prepare("UPDATE roles SET permissions = ?, metadata = ?, updated_at = ? WHERE id = ? AND permissions = ? AND metadata = ?")
        .bind(JSON.stringify(permissions), metadata, Date.now(), r.id, r.permissions, r.metadata)
        .run();
      if (res.meta.changes === 0) {
        await getRole(env, r.id);
        throw aborted(`role ${r.id} changed meanwhile: read it again and retry`);
      }
      return {};
    },

    async get(req, ctx) {
      return { role: roleMessage(await getRole(envOf(ctx), req.roleId)) };
    },

    async assign(req, ctx) {
      const env = envOf(ctx);
      const r = await getRole(env, req.roleId);
      const e = await entityOf(env, req.entityId);
      requireGrantable(principalOf(ctx), JSON.parse(r.permissions) as StoredPermission[], `role ${r.id}`);
      await insertAssignment(env, r, e);
      return {};
    },

    async revoke(req, ctx) {
      const env = envOf(ctx);
      await getRole(env, req.roleId);
      const e = await entityOf(env, req.entityId);
      const [res] = await env.DB.batch([
        env.DB.prepare("DELETE FROM role_assignments WHERE role_id = ? AND subject_type = ? AND subject_id = ?").bind(req.roleId, e.type, e.id),
        adminGuard(env),
      ]);
      if (res!.meta.changes === 0) throw notFound(`assignment of role ${bounded(req.roleId)} to ${e.type.replace("_", " ")} ${bounded(e.id)}`);
      return {};
    },
  },
);
