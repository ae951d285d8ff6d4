/**
 * Held-out accuracy against time (`Run.accuracyCurve`): one line per stage and MT job, on the
 * critical-path clock or the compute clock, hand-drawn SVG like line-chart.tsx. The page
 * refetches the curve when an EVAL_POINT event arrives, so the lines grow while the run trains.
 * Each path carries its point count (`data-points`) for the browser tests.
 */
import { useMemo, useState } from "preact/hooks";
import type { AccuracyPointView, SplitPlanView } from "../../api/types.ts";
import { ChartSvg, HEIGHT, M, WIDTH } from "../../components/line-chart.tsx";
import { percent } from "../../format.ts";

type Clock = "criticalPathSeconds" | "computeSeconds";
const CLOCKS: Record<Clock, string> = { criticalPathSeconds: "critical path", computeSeconds: "compute" };

/** Seconds to one decimal; "–" when there is none. */
const seconds = (x: number | null | undefined) => (x == null ? "–" : x.toFixed(1));

/** The line's key in line-chart.tsx's colours (`module:<i>`, `run:<stage>`) and its label. */
function lineOf(p: AccuracyPointView): { key: string; label: string } {
  if (p.stage === "MODULAR") return { key: `module:${p.moduleIndex}`, label: `module ${p.moduleIndex} (MT)` };
  const label = { PRETRAIN: "meta model (PT)", FINETUNE: "fine-tuning (FT)", E2E: "end to end" }[
    p.stage as string
  ];
  return { key: `run:${p.stage}`, label: label ?? p.stage };
}

export function AccuracyCurve({ curve }: { curve: readonly AccuracyPointView[] }) {
  const [clock, setClock] = useState<Clock>("criticalPathSeconds");
  const drawn = useMemo(() => {
    const lines = new Map<string, { key: string; label: string; points: AccuracyPointView[] }>();
    for (const p of curve) {
      const line = lineOf(p);
      if (!lines.has(line.key)) lines.set(line.key, { ...line, points: [] });
      lines.get(line.key)!.points.push(p);
    }
    const xMax = Math.max(1e-9, ...curve.map((p) => p[clock]));
    // From 0 % to the next 10 % above the best point, so a run far from 100 % is not a flat line.
    const yMax = Math.min(1, Math.ceil(Math.max(0.01, ...curve.map((p) => p.accuracy)) * 10) / 10);
    const sx = (x: number) => M.left + (x / xMax) * (WIDTH - M.left - M.right);
    const sy = (y: number) => HEIGHT - M.bottom - (y / yMax) * (HEIGHT - M.top - M.bottom);
    const paths = [...lines.values()].map((line) => {
      const pts = [...line.points].sort((a, b) => a[clock] - b[clock] || a.step - b.step);
      const d =
        pts
          .map((p, i) => `${i ? "L" : "M"}${sx(p[clock]).toFixed(1)},${sy(p.accuracy).toFixed(1)}`)
          .join("") + (pts.length === 1 ? "h0.01" : "");
      const last = pts.at(-1)!;
      return { ...line, d, last: `${percent(last.accuracy)} at ${seconds(last[clock])} s` };
    });
    return { paths, xMax, yMax };
  }, [curve, clock]);

  if (curve.length === 0)
    return (
      <p class="muted" data-accuracy-points="0">
        No held-out scores yet (the recipe's <code>evalEvery</code> is 0, the dataset has no test split, or no
        job has scored).
      </p>
    );
  const summary = `Held-out accuracy against ${CLOCKS[clock]} seconds: ${drawn.paths.length} lines, ${curve.length} points`;
  return (
    <figure class="chart accuracy-curve" data-clock={clock} data-accuracy-points={curve.length}>
      <figcaption>
        Held-out accuracy against{" "}
        <select
          aria-label="clock"
          value={clock}
          onChange={(e) => setClock((e.target as HTMLSelectElement).value as Clock)}
        >
          <option value="criticalPathSeconds">critical-path seconds</option>
          <option value="computeSeconds">compute seconds</option>
        </select>
      </figcaption>
      <ChartSvg
        label={summary}
        top={`${Math.round(drawn.yMax * 100)} %`}
        bottom="0 %"
        end={`${seconds(drawn.xMax)} s`}
        paths={drawn.paths.map((p) => ({
          key: p.key,
          d: p.d,
          title: `${p.label}: ${p.last}`,
          data: { "data-points": p.points.length },
        }))}
      />
    </figure>
  );
}

/** The split planner's MT jobs: predicted seconds beside measured ones, and the even split's. */
export function SplitPlanTable({ plan }: { plan: SplitPlanView }) {
  return (
    <table class="split-plan">
      <thead>
        <tr>
          <th>Module</th>
          <th>Blocks</th>
          <th>Predicted s</th>
          <th>Measured s</th>
          <th>Even split: blocks, predicted s</th>
        </tr>
      </thead>
      <tbody>
        {plan.split.map((blocks, i) => (
          <tr key={i} data-module={i}>
            <td>{i}</td>
            <td>{blocks}</td>
            <td>{seconds(plan.predictedSeconds[i])}</td>
            <td data-measured={plan.measuredSeconds[i] ?? ""}>{seconds(plan.measuredSeconds[i])}</td>
            <td>
              {plan.evenSplit[i] ?? "–"}, {seconds(plan.evenPredictedSeconds[i])}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
