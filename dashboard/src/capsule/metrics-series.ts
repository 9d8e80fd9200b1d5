/** Turns metric samples into aligned series (time, sum, one per instance), as charts want them. */

export interface Sample {
  instanceId: string;
  timeMs: number;
  value: number;
}

export interface Series {
  /** Seconds since the epoch, ascending. */
  times: number[];
  /** Total over the instances reporting at each time. */
  sum: number[];
  /** Per instance, null where it did not report. */
  instances: { instanceId: string; values: (number | null)[] }[];
}

export function alignSeries(samples: Sample[]): Series {
  const times = [...new Set(samples.map((s) => Math.floor(s.timeMs / 1000)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const ids = [...new Set(samples.map((s) => s.instanceId))].sort();
  const instances = ids.map((instanceId) => ({ instanceId, values: times.map((): number | null => null) }));
  const byId = new Map(instances.map((i) => [i.instanceId, i]));
  const sum = times.map(() => 0);
  for (const s of samples) {
    const i = index.get(Math.floor(s.timeMs / 1000))!;
    byId.get(s.instanceId)!.values[i] = s.value;
    sum[i]! += s.value;
  }
  return { times, sum, instances };
}
