/** api.v1.project.settings.Service: installation-wide project settings and the license. */
import { Plan } from "../../proto/gen/api/v1/project/project_pb";
import { Service } from "../../proto/gen/api/v1/project/settings/service_pb";
import type { AddDockerRegistry } from "../../proto/gen/api/v1/project/settings/settings_pb";
import { encryptSecret } from "../d1/secrets";
import type { Env } from "../env";
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

async function registries(env: Env) {
  const rows = await env.DB.prepare("SELECT id, host FROM docker_registries WHERE project_id = ? ORDER BY created_at, host")
    .bind(INSTALLATION_WIDE)
    .all<{ id: string; host: string }>();
  return rows.results;
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
      const rows = await registries(envOf(ctx));
      // The secret stays in D1: clients only learn that a registry has one.
      return { settings: { dockerRegistries: rows.map((r) => ({ secretId: r.id, host: r.host })) } };
    },

    async updateSettings(req, ctx) {
      const env = envOf(ctx);
      // Applied in order against the current hosts, then written in one atomic batch.
      const hosts = new Map((await registries(env)).map((r) => [r.host, r.id]));
      const statements: D1PreparedStatement[] = [];
      const now = Date.now();
      for (const [i, u] of req.updates.entries()) {
        const f = u.field;
        const at = `updates[${i}]`;
        if (f.case === "addDockerRegistry") {
          const host = registryHost(f.value.host, `${at}.add_docker_registry.host`);
          const secret = registrySecret(f.value, `${at}.add_docker_registry`);
          if (hosts.has(host)) throw alreadyExists(`docker registry ${bounded(host)}`);
          const id = crypto.randomUUID();
          hosts.set(host, id);
          statements.push(
            env.DB.prepare("INSERT INTO docker_registries (id, project_id, host, secret, created_at) VALUES (?, ?, ?, ?, ?)").bind(
              id,
              INSTALLATION_WIDE,
              host,
              await encryptSecret(env, secret, `docker-registry/${id}`),
              now,
            ),
          );
        } else if (f.case === "deleteDockerRegistry") {
          const host = f.value.toLowerCase();
          const id = hosts.get(host);
          if (!id) throw notFound(`docker registry ${bounded(f.value)}`);
          hosts.delete(host);
          statements.push(env.DB.prepare("DELETE FROM docker_registries WHERE id = ?").bind(id));
        } else {
          throw invalidArgument(`${at}.field`, "set add_docker_registry or delete_docker_registry");
        }
      }
      if (statements.length) {
        await env.DB.batch(statements).catch((err: unknown) => {
          // A concurrent update added the same host between our read and this write.
          if (String(err).includes("UNIQUE constraint failed: docker_registries.")) throw alreadyExists("docker registry with this host");
          throw err;
        });
      }
      return {};
    },

    getLicenseInfo() {
      // edgeplane is open source and has no license server: every installation is on the free plan, forever.
      return { plan: Plan.FREE };
    },
  },
);
