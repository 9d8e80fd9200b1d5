/** api.v1.service_account.Service: machine identities that log in with client credentials. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/service_account/service_pb";
import { adminGuard } from "../auth/admins";
import { sha256Hex, toHex } from "../core/encoding";
import { revokeSessions } from "../auth/sessions";
import { requireExisting } from "../d1/exists";
import { listServiceAccounts } from "../d1/service-accounts";
import { envOf, principalOf } from "./context";
import { bounded, notFound } from "../core/errors";
import { checkDnsLabel } from "../core/names";
import { defineService } from "./registry";
import { authorOf, serviceAccountEntry } from "./user-messages";

export const serviceAccounts = defineService(
  Service,
  {
    create: { action: "serviceaccount:edit", scope: () => ({ resource: "serviceaccount/*" }) },
    list: { action: "serviceaccount:view", scope: () => ({ resource: "serviceaccount/*" }) },
    delete: { action: "serviceaccount:edit", scope: (m: { serviceAccountId: string }) => ({ resource: `serviceaccount/${m.serviceAccountId}` }) },
  },
  {
    async create(req, ctx) {
      const env = envOf(ctx);
      checkDnsLabel("name", req.name);
      if (req.initialGroupId) await requireExisting(env, "group", req.initialGroupId);
      const author = authorOf(principalOf(ctx));
      const id = crypto.randomUUID();
      const clientId = `rig_${crypto.randomUUID()}`;
      // 256 random bits: shown once here, stored only as a hash.
      const clientSecret = `secret_${toHex(crypto.getRandomValues(new Uint8Array(32)))}`;
      const now = Date.now();
      await env.DB.batch([
        env.DB.prepare(
          "INSERT INTO service_accounts (id, name, client_id, secret_hash, managed, created_by, created_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
        ).bind(id, req.name, clientId, await sha256Hex(clientSecret), JSON.stringify(author), now),
        ...(req.initialGroupId
          ? [env.DB.prepare("INSERT INTO group_members (group_id, member_id, member_type, joined_at) VALUES (?, ?, 'service_account', ?)").bind(req.initialGroupId, id, now)]
          : []),
      ]);
      return {
        serviceAccount: {
          name: req.name,
          createdAt: timestampFromMs(now),
          createdBy: author,
          managed: false,
          groupIds: req.initialGroupId ? [req.initialGroupId] : [],
        },
        clientId,
        clientSecret,
      };
    },

    async list(_req, ctx) {
      const env = envOf(ctx);
      return {
        serviceAccounts: (await listServiceAccounts(env)).map(serviceAccountEntry),
      };
    },

    async delete(req, ctx) {
      const env = envOf(ctx);
      const [deleted] = await env.DB.batch([
        env.DB.prepare("DELETE FROM service_accounts WHERE id = ?").bind(req.serviceAccountId),
        revokeSessions(env, "subject_id = ? AND changes() = 1", req.serviceAccountId),
        env.DB.prepare("DELETE FROM role_assignments WHERE subject_type = 'service_account' AND subject_id = ?").bind(req.serviceAccountId),
        env.DB.prepare("DELETE FROM group_members WHERE member_id = ?").bind(req.serviceAccountId),
        adminGuard(env),
      ]);
      if (deleted!.meta.changes === 0) throw notFound(`service account ${bounded(req.serviceAccountId)}`);
      return {};
    },
  },
);
