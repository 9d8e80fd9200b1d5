/** CPU and memory over time, summed and per instance. */
import { lazy, Suspense } from "preact/compat";
import { useEffect } from "preact/hooks";
import { api } from "../api/clients";
import { Empty, ErrorNote, Section, useLoad } from "../ui/kit";
import { alignSeries, type Sample } from "./metrics-series";
import { timestampMs } from "./Rollouts";
import type { CapsuleScope } from "./scope";

// uPlot loads with the chart, after the first page.
const Chart = lazy(() => import("./Chart").then((m) => ({ default: m.Chart })));

/** Runners report samples periodically and the stream carries no metrics event, so the chart re-reads them this often. */
const refreshMs = 15_000;

export function Metrics({ scope }: { scope: CapsuleScope }) {
  const data = useLoad(async () => {
    const { instanceMetrics } = await api.capsules.capsuleMetrics({ projectId: scope.project, capsuleId: scope.capsule, environmentId: scope.environment });
    const cpu: Sample[] = [];
    const memory: Sample[] = [];
    for (const m of instanceMetrics) {
      const c = m.mainContainer;
      if (!c) continue;
      const timeMs = timestampMs(c.timestamp) ?? 0;
      cpu.push({ instanceId: m.instanceId, timeMs, value: Number(c.cpuMs) });
      memory.push({ instanceId: m.instanceId, timeMs, value: Number(c.memoryBytes) / (1024 * 1024) });
    }
    return { cpu: alignSeries(cpu), memory: alignSeries(memory) };
  }, [scope.project, scope.capsule, scope.environment]);
  useEffect(() => {
    const t = setInterval(() => void data.reload(), refreshMs);
    return () => clearInterval(t);
  }, [data.reload]);
  const d = data.data;
  return (
    <Section title="CPU and memory">
      <ErrorNote error={data.error} />
      {d && d.cpu.times.length === 0 && <Empty>No samples yet: the runner reports CPU and memory of running instances.</Empty>}
      {d && d.cpu.times.length > 0 && (
        <Suspense fallback={<p>Loading the charts…</p>}>
          <div class="grid two">
            <Chart title="CPU (ms)" series={d.cpu} />
            <Chart title="Memory (MiB)" series={d.memory} />
          </div>
        </Suspense>
      )}
    </Section>
  );
}
