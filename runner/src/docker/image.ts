/**
 * Images: used when the Docker host has them, else pulled, with the project's credentials
 * for the image's registry. A pull failure carries the registry's own reason.
 */
import type Docker from "dockerode";
import type { RegistryAuth } from "../../../proto/frames/runner";
import { ApplyFailed } from "../driver";
import { reason } from "../log";

/** Docker Hub has several names; the engine and its config files use these interchangeably. */
const HUB = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

/** The registry host of an image reference (docker.io when it names none). */
export function registryOf(image: string): string {
  const first = image.split("/")[0] ?? "";
  const isHost = image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  return isHost ? first.toLowerCase() : "docker.io";
}

const sameRegistry = (a: string, b: string) => a === b || (HUB.has(a) && HUB.has(b));

/** The engine's auth config for a registry, from the project's settings. */
export function authFor(image: string, registries: RegistryAuth[]): Docker.AuthConfig | undefined {
  const host = registryOf(image);
  const r = registries.find((x) => sameRegistry(x.host.toLowerCase(), host));
  if (!r) return undefined;
  if (r.username !== undefined || r.password !== undefined) return { username: r.username ?? "", password: r.password ?? "", serveraddress: r.host };
  const [username = "", password = ""] = Buffer.from(r.auth ?? "", "base64").toString("utf8").split(/:(.*)/s);
  return { username, password, serveraddress: r.host };
}

/** Makes sure the Docker host has `image`; throws ApplyFailed with the registry's reason. */
export async function ensureImage(docker: Docker, image: string, registries: RegistryAuth[]): Promise<void> {
  try {
    await docker.getImage(image).inspect();
    return;
  } catch {
    // Not here: pull it.
  }
  try {
    const stream = await docker.pull(image, { authconfig: authFor(image, registries) });
    await new Promise<void>((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = events?.find((e) => e.error || e.errorDetail);
        if (err) reject(err);
        else if (failed) reject(new Error(failed.errorDetail?.message ?? failed.error));
        else resolve();
      }),
    );
  } catch (e) {
    throw new ApplyFailed(`pulling image ${image} failed: ${reason(e).replace(/^\(HTTP code \d+\) [a-z ]+ - /, "")}`);
  }
}
