/**
 * What a container of a capsule is made of, from its rollout configuration: image,
 * command and arguments, environment variables, CPU and memory limits, network, and config
 * files (put in before start, read-only). Capsule instances and the one-off containers of
 * its command cron jobs are made from the same spec.
 */
import { buffer } from "node:stream/consumers";
import type Docker from "dockerode";
import { pack } from "tar-stream";
import type { RolloutConfig } from "../../../proto/gen/api/v1/capsule/rollout_pb";

/** Docker's default masked read-only paths, kept when config files are added to the list. */
const DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export interface ContainerSpec {
  /** Create options without name, labels or restart policy (each kind of container sets its own). */
  options: Docker.ContainerCreateOptions & { HostConfig: Docker.HostConfig };
  /** Config files to put in after create and before start (`putConfigFiles`). */
  files: { path: string; content: Uint8Array }[];
}

export function containerSpec(config: RolloutConfig, network: string): ContainerSpec {
  const settings = config.containerSettings;
  const files = config.configFiles.filter((f) => f.path.startsWith("/"));
  const limits = settings?.resources?.limits;
  const requests = settings?.resources?.requests;
  return {
    files,
    options: {
      Image: config.imageId,
      // As Kubernetes: `command` replaces the image's entrypoint, `args` its command.
      ...(settings?.command ? { Entrypoint: [settings.command], Cmd: settings.args } : settings?.args.length ? { Cmd: settings.args } : {}),
      Env: Object.entries(settings?.environmentVariables ?? {}).map(([k, v]) => `${k}=${v}`),
      HostConfig: {
        NetworkMode: network,
        ...(limits?.cpuMillis ? { NanoCpus: limits.cpuMillis * 1_000_000 } : {}),
        ...(limits?.memoryBytes ? { Memory: Number(limits.memoryBytes) } : {}),
        ...(requests?.cpuMillis ? { CpuShares: Math.max(2, Math.round((requests.cpuMillis * 1024) / 1000)) } : {}),
        ...(requests?.memoryBytes ? { MemoryReservation: Number(requests.memoryBytes) } : {}),
        ...(files.length > 0 ? { ReadonlyPaths: [...DEFAULT_READONLY_PATHS, ...files.map((f) => f.path)] } : {}),
      },
    },
  };
}

/** Puts the spec's config files into a created container, read-only for everyone (they are also mounted read-only). */
export async function putConfigFiles(container: Docker.Container, files: ContainerSpec["files"]): Promise<void> {
  if (files.length === 0) return;
  const p = pack();
  for (const f of files) p.entry({ name: f.path.replace(/^\/+/, ""), mode: 0o444 }, Buffer.from(f.content));
  p.finalize();
  await container.putArchive(await buffer(p), { path: "/" });
}
