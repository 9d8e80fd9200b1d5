/** A uPlot line chart of one metric: the sum in bold, each instance thin. */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series } from "./metrics-series";

const palette = ["#2563eb", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2"];

export function Chart({ title, series }: { title: string; series: Series }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const plot = new uPlot(
      {
        title,
        width: Math.max(280, el.current.clientWidth),
        height: 200,
        series: [
          {},
          { label: "All instances", stroke: "#111827", width: 2 },
          ...series.instances.map((s, i) => ({ label: s.instanceId, stroke: palette[i % palette.length], width: 1 })),
        ],
      },
      [series.times, series.sum, ...series.instances.map((s) => s.values)],
      el.current,
    );
    return () => plot.destroy();
  }, [title, series]);
  const last = series.sum.at(-1);
  return (
    <figure class="chart">
      <div ref={el} />
      <figcaption class="sr-only">
        {title}: latest total {last ?? "none"} across {series.instances.length} instances
      </figcaption>
    </figure>
  );
}
