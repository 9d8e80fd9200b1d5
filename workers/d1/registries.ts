/**
 * Pull credentials of the Docker registries in the project settings, for the runner: only
 * those of the registry an image is on, decrypted, in the shape of the runner protocol.
 */
import { z } from "zod";
import { parseReference } from "../core/image-reference";
import type { RegistryAuth } from "../../proto/frames/runner";
import type { Env } from "../env";
import { decryptSecret } from "./secrets";

/** Docker Hub's names: a registry stored as any of them is the one `index.docker.io` images are on. */
const HUB = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
/** As project-settings.ts stores it: the auth string, or username and password (and an email the runner does not need). */
const StoredSecret = z.object({ auth: z.string().optional(), username: z.string().optional(), password: z.string().optional() });
const same = (a: string, b: string) => a === b || (HUB.has(a) && HUB.has(b));

/** The project settings' credentials for the registry of `imageId` (none when the image cannot be parsed or has none). */
export async function registryAuthsFor(env: Env, imageId: string): Promise<RegistryAuth[]> {
  let registry: string;
  try {
    registry = parseReference(imageId).registry.toLowerCase();
  } catch {
    return [];
  }
  const rows = await env.DB.prepare("SELECT id, host, secret FROM docker_registries").all<{ id: string; host: string; secret: string }>();
  const out: RegistryAuth[] = [];
  for (const r of rows.results.filter((x) => same(x.host, registry))) {
    const secret = StoredSecret.parse(JSON.parse(new TextDecoder().decode(await decryptSecret(env, r.secret, `docker-registry/${r.id}`))));
    out.push({ host: r.host, ...secret });
  }
  return out;
}
