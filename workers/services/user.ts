/** api.v1.user.Service: users managed by administrators. */
import { Service } from "../../proto/gen/api/v1/user/service_pb";
import type { Update } from "../../proto/gen/api/v1/user/user_pb";
import type { HashingInstance } from "../../proto/gen/model/common_pb";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { identifierOf, normalizeEmail, normalizePhone, normalizeUsername } from "../auth/identifiers";
import { checkPasswordPolicy } from "../core/password-policy";
import { b64 } from "../core/encoding";
import { hashPassword, type StoredHash } from "../core/passwords";
import { requireExisting } from "../d1/exists";
import { updateMetadata } from "../d1/metadata";
import { listSessionsPage } from "../d1/sessions";
import { deleteUser, findUser, getUser, insertUser, listUsersPage, updateUser, type UserColumns, type UserRow } from "../d1/users";
import { loadUserSettings, type UserSettings } from "../d1/settings";
import { envOf, principalOf } from "./context";
import { bounded, invalidArgument, notFound } from "../core/errors";
import { pageOf, searchPattern } from "../core/pagination";
import { defineService } from "./registry";
import { user, userEntry } from "./user-messages";

const userScope = (m: { userId?: string }) => ({ resource: `user/${m.userId || "*"}` });

/** Columns an Update writes, or a statement-level effect (session reset). */
type Changes = UserColumns & { resetSessions?: boolean };

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
      await insertUser(
        env,
        { ...columns, id, register_method: "system", created_by: p.subjectId, created_at: now, updated_at: now },
        req.initialGroupId,
      );
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
      const { resetSessions, ...columns } = c;
      await updateUser(env, req.userId, columns, !!resetSessions);
      return {};
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      if (!(await getUser(env, req.userId))) throw notFound(`user ${bounded(req.userId)}`);
      await deleteUser(env, req.userId);
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
      const { rows, total } = await listUsersPage(env, search, page);
      return { users: rows.map(userEntry), total };
    },

    async listSessions(req, ctx) {
      const env = envOf(ctx);
      if (!(await getUser(env, req.userId))) throw notFound(`user ${bounded(req.userId)}`);
      const page = pageOf(req.pagination);
      const { rows, total } = await listSessionsPage(env, req.userId, page);
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
        total,
      };
    },
  },
);

