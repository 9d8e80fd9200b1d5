/** api.v1.service_account.Service: machine identities that log in with client credentials. */
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Service } from "../../proto/gen/api/v1/service_account/service_pb";
import { sha256Hex, toHex } from "../core/encoding";
import { requireExisting } from "../d1/exists";
import { deleteServiceAccount, insertServiceAccount, listServiceAccounts } from "../d1/service-accounts";
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
      await insertServiceAccount(
        env,
        { id, name: req.name, client_id: clientId, secret_hash: await sha256Hex(clientSecret), created_by: JSON.stringify(author), created_at: now },
        req.initialGroupId,
      );
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
      if (!(await deleteServiceAccount(env, req.serviceAccountId))) throw notFound(`service account ${bounded(req.serviceAccountId)}`);
      return {};
    },
  },
);
