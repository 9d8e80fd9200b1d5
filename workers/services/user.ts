/** api.v1.user.Service: users managed by administrators. */
import { Service } from "../../proto/gen/api/v1/user/service_pb";
import type { Update } from "../../proto/gen/api/v1/user/user_pb";
import type { HashingInstance } from "../../proto/gen/model/common_pb";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { identifierOf, normalizeEmail, normalizePhone, normalizeUsername } from "../auth/identifiers";
import { checkPasswordPolicy } from "../core/password-policy";
import { b64 } from "../core/encoding";
import { hashPassword, type StoredHash } from "../core/passwords";
import { revokeSessions } from "../auth/sessions";
import { adminGuard } from "../auth/admins";
import { requireExisting } from "../d1/exists";
import { updateMetadata } from "../d1/metadata";
import { findUser, getUser, selectUsers, type UserRow } from "../d1/users";
import { loadUserSettings, type UserSettings } from "../d1/user-settings";
import type { Env } from "../env";
import { envOf, principalOf } from "./context";
import { bounded, invalidArgument, notFound } from "../core/errors";
import { pageOf, searchPattern } from "../core/pagination";
import { defineService } from "./registry";
import { user, userEntry } from "./user-messages";
import { count, query, readBatch, total } from "../d1/batch";
import type { SessionRow } from "../d1/sessions";

const userScope = (m: { userId?: string }) => ({ resource: `user/${m.userId || "*"}` });

/** Columns an Update writes, or a statement-level effect (session reset). */
type Changes = Partial<Record<keyof UserRow, string | number | null>> & { resetSessions?: boolean };

async function applyUpdates(s: UserSettings, updates: Update[], current: Pick<UserRow, "metadata">): Promise<Changes> {
  const c: Changes = {};
  for (const [i, u] of updates.entries()) {
    const f = u.field;
    const at = (name: string) => `updates[${i}].${name}`;
    switch (f.case) {
      case "email":
        c.email = f.value ? normalizeEmail(f.value, at("email")) : null;
        c.email_verified = 0;
        break;
      case "username":
        c.username = f.value ? normalizeUsername(f.value, at("username")) : null;
        break;
      case "phoneNumber":
        c.phone_number = f.value ? normalizePhone(f.value, at("phone_number")) : null;
        c.phone_verified = 0;
        break;
      case "password":
        checkPasswordPolicy(f.value, at("password"));
        c.password_hash = JSON.stringify(await hashPassword(f.value, s.passwordHashing));
        break;
      case "hashedPassword":
        c.password_hash = JSON.stringify(importHash(f.value, at("hashed_password")));
        break;
      case "profile":
        c.first_name = f.value.firstName.trim();
        c.last_name = f.value.lastName.trim();
        break;
      case "isEmailVerified":
        c.email_verified = f.value ? 1 : 0;
        break;
      case "isPhoneVerified":
        c.phone_verified = f.value ? 1 : 0;
        break;
      case "resetSessions":
        c.resetSessions = true;
        break;
      case "setMetadata":
      case "deleteMetadataKey":
        c.metadata = updateMetadata(String(c.metadata ?? current.metadata), f, `updates[${i}]`);
        break;
      default:
        throw invalidArgument(at("field"), "set one field per update");
    }
  }
  return c;
}

/** model.HashingInstance (a password hash made elsewhere, e.g. an import from Rig or Firebase). */
function importHash(h: HashingInstance, field: string): StoredHash {
  const method = h.config?.method;
  if (method?.case === "bcrypt") {
    const hash = new TextDecoder().decode(h.hash);
    if (!/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(hash)) throw invalidArgument(`${field}.hash`, "is not a bcrypt hash");
    return { alg: "bcrypt", hash };
  }
  if (method?.case === "scrypt") {
    if (h.instance.case !== "scrypt") throw invalidArgument(`${field}.scrypt`, "the salt is required for scrypt hashes");
    const c = method.value;
    return {
      alg: "scrypt",
      hash: b64(h.hash),
      salt: b64(h.instance.value.salt),
      params: { signerKey: c.signerKey, saltSeparator: c.saltSeparator, rounds: c.rounds, memCost: c.memCost, p: c.p, keyLen: c.keyLen },
    };
  }
  throw invalidArgument(`${field}.config`, "set bcrypt or scrypt");
}

/** Statements that delete a user and everything that grants it access, as one batch. */
export function deleteUserStatements(env: Env, userId: string): D1PreparedStatement[] {
  return [
    env.DB.prepare("DELETE FROM users WHERE id = ?").bind(userId),
    revokeSessions(env, "subject_id = ?", userId),
    env.DB.prepare("DELETE FROM role_assignments WHERE subject_type = 'user' AND subject_id = ?").bind(userId),
    env.DB.prepare("DELETE FROM group_members WHERE member_id = ?").bind(userId),
    env.DB.prepare("DELETE FROM verification_codes WHERE user_id = ?").bind(userId),
    adminGuard(env),
  ];
}

/** One UPDATE for all column changes, plus a session reset when asked. */
function updateStatements(env: Env, userId: string, c: Changes): D1PreparedStatement[] {
  const { resetSessions, ...columns } = c;
  const now = Date.now();
  const sets = Object.entries({ ...columns, updated_at: now, ...(resetSessions ? { new_sessions_since: now } : {}) });
  const out = [
    env.DB.prepare(`UPDATE users SET ${sets.map(([k]) => `${k} = ?`).join(", ")} WHERE id = ?`).bind(...sets.map(([, v]) => v), userId),
  ];
  if (resetSessions || columns.password_hash) out.push(revokeSessions(env, "subject_id = ?", userId));
  return out;
}

export const users = defineService(
  Service,
  {
    create: { action: "user:edit", scope: () => ({ resource: "user/*" }) },
    update: { action: "user:edit", scope: userScope },
    delete: { action: "user:edit", scope: userScope },
    get: { action: "user:view", scope: userScope },
    getByIdentifier: { action: "user:view", scope: () => ({ resource: "user/*" }) },
    list: { action: "user:view", scope: () => ({ resource: "user/*" }) },
    listSessions: { action: "user:view", scope: userScope },
  },
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      const p = principalOf(ctx);
      const c = await applyUpdates(await loadUserSettings(env), req.initializers, { metadata: "{}" });
      if (!c.email && !c.username && !c.phone_number) {
        throw invalidArgument("initializers", "set at least one of email, username or phone_number");
      }
      if (req.initialGroupId) await requireExisting(env, "group", req.initialGroupId);
      const id = crypto.randomUUID();
      const now = Date.now();
      const { resetSessions: _, ...columns } = c;
      const row = { ...columns, id, register_method: "system", created_by: p.subjectId, created_at: now, updated_at: now };
      const keys = Object.keys(row);
      await env.DB.batch([
        env.DB.prepare(`INSERT INTO users (${keys.join(", ")}) VALUES (${keys.map(() => "?").join(", ")})`).bind(...Object.values(row)),
        ...(req.initialGroupId
          ? [env.DB.prepare("INSERT INTO group_members (group_id, member_id, member_type, joined_at) VALUES (?, ?, 'user', ?)").bind(req.initialGroupId, id, now)]
          : []),
      ]);
      return { user: user((await getUser(env, id))!) };
    },

    async update(req, ctx) {
      const env = envOf(ctx);
      const current = await getUser(env, req.userId);
      if (!current) throw notFound(`user ${bounded(req.userId)}`);
      const c = await applyUpdates(await loadUserSettings(env), req.updates, current);
      if (c.email === null && c.username === null && c.phone_number === null) {
        throw invalidArgument("updates", "a user must keep at least one identifier");
      }
      await env.DB.batch(updateStatements(env, req.userId, c));
      return {};
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      if (!(await getUser(env, req.userId))) throw notFound(`user ${bounded(req.userId)}`);
      await env.DB.batch(deleteUserStatements(env, req.userId));
      return {};
    },

    async get(req, ctx) {
      const env = envOf(ctx);
      const u = await getUser(env, req.userId);
      if (!u) throw notFound(`user ${bounded(req.userId)}`);
      return { user: user(u) };
    },

    async getByIdentifier(req, ctx) {
      const env = envOf(ctx);
      const u = await findUser(env, identifierOf(req.identifier?.identifier));
      if (!u) throw notFound("user");
      return { user: user(u) };
    },

    async list(req, ctx) {
      const env = envOf(ctx);
      const page = pageOf(req.pagination);
      const search = searchPattern("search", req.search);
      const where = `WHERE ?1 = '%%' OR email LIKE ?1 ESCAPE '\\' OR username LIKE ?1 ESCAPE '\\' OR phone_number LIKE ?1 ESCAPE '\\'
        OR (first_name || ' ' || last_name) LIKE ?1 ESCAPE '\\'`;
      const [list, n] = await readBatch(
        env.DB,
        query<UserRow>(
          env.DB.prepare(selectUsers(`${where} ORDER BY created_at ${page.descending ? "DESC" : "ASC"}, id LIMIT ?2 OFFSET ?3`)).bind(
            search,
            page.limit,
            page.offset,
          ),
        ),
        count(env.DB.prepare(`SELECT COUNT(*) AS n FROM users ${where}`).bind(search)),
      );
      return { users: list.map(userEntry), total: total(n) };
    },

    async listSessions(req, ctx) {
      const env = envOf(ctx);
      if (!(await getUser(env, req.userId))) throw notFound(`user ${bounded(req.userId)}`);
      const page = pageOf(req.pagination);
      const [rows, n] = await readBatch(
        env.DB,
        query<SessionRow>(
          env.DB.prepare(`SELECT * FROM sessions WHERE subject_id = ? ORDER BY created_at ${page.descending ? "DESC" : "ASC"}, id LIMIT ? OFFSET ?`).bind(
            req.userId,
            page.limit,
            page.offset,
          ),
        ),
        count(env.DB.prepare("SELECT COUNT(*) AS n FROM sessions WHERE subject_id = ?").bind(req.userId)),
      );
      return {
        sessions: rows.map((r) => ({
          sessionId: r.id,
          session: {
            authMethod: { method: { case: "loginType", value: r.login_type } },
            isInvalidated: r.revoked_at !== null,
            createdAt: timestampFromMs(r.created_at),
            invalidatedAt: r.revoked_at !== null ? timestampFromMs(r.revoked_at) : undefined,
            expiresAt: timestampFromMs(r.expires_at),
            renewedAt: r.renewed_at !== null ? timestampFromMs(r.renewed_at) : undefined,
            country: r.country,
            postalCode: r.postal_code,
          },
        })),
        total: total(n),
      };
    },
  },
);

