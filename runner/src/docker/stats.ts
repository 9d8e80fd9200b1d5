/** Readings from a Docker stats sample (GET /containers/<id>/stats?stream=false). */
import type Docker from "dockerode";

/** CPU time the container used since it started, in milliseconds. */
export const cpuMillisUsed = (s: Docker.ContainerStats): number => Math.floor((s.cpu_stats?.cpu_usage?.total_usage ?? 0) / 1_000_000);

/** Memory in use, without the page cache (as `docker stats` shows it). */
export function memoryUsed(s: Docker.ContainerStats): number {
  const usage = s.memory_stats?.usage ?? 0;
  const stats = (s.memory_stats?.stats ?? {}) as Record<string, number | undefined>;
  // cgroup v2 reports inactive_file, v1 total_inactive_file.
  const cache = stats.inactive_file ?? stats.total_inactive_file ?? 0;
  return Math.max(0, usage - cache);
}
