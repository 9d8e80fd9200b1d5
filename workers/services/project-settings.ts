/** api.v1.project.settings.Service: installation-wide project settings and the license. */
import { Plan } from "../../proto/gen/api/v1/project/project_pb";
import { Service } from "../../proto/gen/api/v1/project/settings/service_pb";
import type { AddDockerRegistry } from "../../proto/gen/api/v1/project/settings/settings_pb";
import { listRegistries, type RegistryChange, updateRegistries } from "../d1/registries";
import { encryptSecret } from "../d1/secrets";
import { envOf } from "./context";
import { alreadyExists, bounded, invalidArgument, notFound } from "../core/errors";
import { DNS_LABEL_SOURCE } from "../core/names";
import { defineService } from "./registry";

/** The requests name no project, so their registries are stored under this project id. */
export const INSTALLATION_WIDE = "";

const HOST = new RegExp(`^(${DNS_LABEL_SOURCE})(\\.${DNS_LABEL_SOURCE})*(:(\\d{1,5}))?$`);

/** A registry host, `hostname[:port]`, lower-cased (host names are case-insensitive). */
function registryHost(value: string, field: string): string {
  const host = value.toLowerCase();
  const m = HOST.exec(host);
  const port = m?.[6];
  if (!m || host.split(":")[0]!.length > 253 || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    throw invalidArgument(field, "must be a registry host, hostname[:port], e.g. ghcr.io or registry.example.com:5000");
  }
  return host;
}

/** What a registry authenticates with, as stored (encrypted): the auth string or the credentials. */
function registrySecret(add: AddDockerRegistry, field: string): string {
  const f = add.field;
  if (f.case === "auth") {
    if (!f.value) throw invalidArgument(`${field}.auth`, "must not be empty");
    return JSON.stringify({ auth: f.value });
  }
  if (f.case === "credentials") {
    if (!f.value.username) throw invalidArgument(`${field}.credentials.username`, "is required");
    if (!f.value.password) throw invalidArgument(`${field}.credentials.password`, "is required");
    return JSON.stringify({ username: f.value.username, password: f.value.password, email: f.value.email });
  }
  throw invalidArgument(field, "set auth or credentials");
}

export const projectSettings = defineService(
  Service,
  {
    getSettings: { action: "project:view" },
    updateSettings: { action: "project:edit" },
    getLicenseInfo: { authenticated: true },
  },
  {
    async getSettings(_req, ctx) {
      const rows = await listRegistries(envOf(ctx), INSTALLATION_WIDE);
      // The secret stays in D1: clients only learn that a registry has one.
      return { settings: { dockerRegistries: rows.map((r) => ({ secretId: r.id, host: r.host })) } };
    },

    async updateSettings(req, ctx) {
      const env = envOf(ctx);
      // Applied in order against the current hosts, then written in one atomic batch.
      const hosts = new Map((await listRegistries(env, INSTALLATION_WIDE)).map((r) => [r.host, r.id]));
      const changes: RegistryChange[] = [];
      for (const [i, u] of req.updates.entries()) {
        const f = u.field;
        const at = `updates[${i}]`;
        if (f.case === "addDockerRegistry") {
          const host = registryHost(f.value.host, `${at}.add_docker_registry.host`);
          const secret = registrySecret(f.value, `${at}.add_docker_registry`);
          if (hosts.has(host)) throw alreadyExists(`docker registry ${bounded(host)}`);
          const id = crypto.randomUUID();
          hosts.set(host, id);
          changes.push({ add: { id, project_id: INSTALLATION_WIDE, host, secret: await encryptSecret(env, secret, `docker-registry/${id}`) } });
        } else if (f.case === "deleteDockerRegistry") {
          const host = f.value.toLowerCase();
          const id = hosts.get(host);
          if (!id) throw notFound(`docker registry ${bounded(f.value)}`);
          hosts.delete(host);
          changes.push({ deleteId: id });
        } else {
          throw invalidArgument(`${at}.field`, "set add_docker_registry or delete_docker_registry");
        }
      }
      // already_exists too if a concurrent update added the same host between our read and this write.
      await updateRegistries(env, changes, Date.now());
      return {};
    },

    getLicenseInfo() {
      // edgeplane is open source and has no license server: every installation is on the free plan, forever.
      return { plan: Plan.FREE };
    },
  },
);
