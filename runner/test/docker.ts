/**
 * The Docker side of the runner's end-to-end tests: whether an engine answers, the test
 * image (FROM scratch with a static busybox and its applets, built through the Engine API,
 * no registry needed), and removing whatever the runner left of an environment.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import Docker from "dockerode";
import { pack } from "tar-stream";

export const docker = new Docker({ socketPath: process.env.DOCKER_HOST?.replace(/^unix:\/\//, "") || "/var/run/docker.sock" });

/** The static busybox of Debian's busybox-static. */
const BUSYBOX = "/bin/busybox";

export async function dockerAnswers(): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/** What the test image serves by default. */
export const INDEX = "hello from edgeplane\n";

/** Builds the test image once per content (tagged by its hash) and returns its name. */
export async function testImage(): Promise<string> {
  const binary = readFileSync(BUSYBOX);
  const applets = execFileSync(BUSYBOX, ["--list"], { encoding: "utf8" }).split("\n").filter((a) => a && a !== "busybox");
  // By default it serves /www over HTTP on port 80, like a web server image would.
  const dockerfile = 'FROM scratch\nCOPY rootfs/ /\nCMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n';
  const tag = createHash("sha256").update(binary).update(dockerfile).update(INDEX).update(applets.join(",")).digest("hex").slice(0, 12);
  const name = `edgeplane-test-busybox:${tag}`;
  try {
    await docker.getImage(name).inspect();
    return name;
  } catch {
    // Not built yet.
  }
  const p = pack();
  p.entry({ name: "Dockerfile" }, dockerfile);
  p.entry({ name: "rootfs/bin/busybox", mode: 0o755 }, binary);
  for (const a of applets) p.entry({ name: `rootfs/bin/${a}`, type: "symlink", linkname: "busybox" });
  for (const dir of ["rootfs/tmp", "rootfs/etc"]) p.entry({ name: dir, type: "directory", mode: 0o1777 });
  p.entry({ name: "rootfs/www/index.html" }, INDEX);
  p.finalize();
  const stream = await docker.buildImage(Readable.from(await buffer(p)), { t: name, pull: false, rm: true, forcerm: true });
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((e) => e.error);
      if (err || failed) reject(new Error(`building ${name}: ${err?.message ?? failed?.error}`));
      else resolve();
    }),
  );
  return name;
}

const LABELS = (environmentId: string) => ({ label: ["dev.edgeplane.managed=true", `dev.edgeplane.environment=${environmentId}`] });

/** What the runner left of an environment on the host, by kind. */
export async function leftovers(environmentId: string): Promise<{ containers: string[]; networks: string[]; volumes: string[] }> {
  const [containers, networks, volumes] = await Promise.all([
    docker.listContainers({ all: true, filters: LABELS(environmentId) }),
    docker.listNetworks({ filters: LABELS(environmentId) }),
    docker.listVolumes({ filters: LABELS(environmentId) }),
  ]);
  return { containers: containers.map((c) => c.Names[0] ?? c.Id), networks: networks.map((n) => n.Name), volumes: (volumes.Volumes ?? []).map((v) => v.Name) };
}

/** Removes every container, network and volume of an environment labelled as the runner's. */
export async function removeAll(environmentId: string): Promise<void> {
  const filters = LABELS(environmentId);
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
  for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove().catch(() => {});
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true }).catch(() => {});
}
