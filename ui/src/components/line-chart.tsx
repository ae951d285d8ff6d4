/**
 * A hand-drawn SVG line chart: one <path> per series whatever its length (decimated to the
 * chart's width), so 10,000 events stay a handful of DOM nodes. Each path carries the seqs of
 * every point it holds (`data-seqs`): the browser tests compare them with the API's events.
 */
import { useMemo } from "preact/hooks";
import { decimate, type XY } from "../state/decimate.ts";
import type { SeriesPoint } from "../state/run-fold.ts";

export interface ChartSeries {
  key: string;
  label: string;
  points: readonly SeriesPoint[];
}

/** The charts' drawing box (viewBox units) and the margins the axes' labels sit in. */
export const WIDTH = 640;
export const HEIGHT = 220;
export const M = { left: 56, right: 12, top: 10, bottom: 26 };
const BUCKETS = 300;

/** Distinct hues for up to hundreds of series; run-level stages get dark ones. */
export function seriesColor(key: string): string {
  if (key.startsWith("run:")) return key === "run:FINETUNE" ? "#1f2937" : "#6b7280";
  const i = Number(key.slice("module:".length)) || 0;
  return `hsl(${(i * 137.508) % 360} 70% 42%)`;
}

/**
 * A chart's <svg>: both axes, the y axis's top and bottom values and the x axis's end, and one
 * path per series (`data-key`, `data-points` and any other `data-*` for the browser tests).
 */
export function ChartSvg(props: {
  label: string;
  top: string;
  bottom: string;
  end: string;
  paths: readonly {
    key: string;
    d: string;
    title: string;
    data: Record<`data-${string}`, string | number>;
  }[];
}) {
  return (
    <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={props.label} preserveAspectRatio="none">
      <line class="axis" x1={M.left} y1={HEIGHT - M.bottom} x2={WIDTH - M.right} y2={HEIGHT - M.bottom} />
      <line class="axis" x1={M.left} y1={M.top} x2={M.left} y2={HEIGHT - M.bottom} />
      <text class="tick" x={M.left - 4} y={M.top + 8} text-anchor="end">
        {props.top}
      </text>
      <text class="tick" x={M.left - 4} y={HEIGHT - M.bottom} text-anchor="end">
        {props.bottom}
      </text>
      <text class="tick" x={WIDTH - M.right} y={HEIGHT - 6} text-anchor="end">
        {props.end}
      </text>
      {props.paths.map((p) => (
        <path key={p.key} d={p.d} stroke={seriesColor(p.key)} class="series" data-key={p.key} {...p.data}>
          <title>{p.title}</title>
        </path>
      ))}
    </svg>
  );
}

export function LineChart(props: { title: string; field: "loss" | "lr"; series: readonly ChartSeries[] }) {
  const column = props.field === "loss" ? 2 : 3;
  const drawn = useMemo(() => {
    const all = props.series.filter((s) => s.points.length);
    let xMax = 1;
    let yMin = Number.POSITIVE_INFINITY;
    let yMax = Number.NEGATIVE_INFINITY;
    for (const s of all)
      for (const p of s.points) {
        if (p[1] > xMax) xMax = p[1];
        const y = p[column]!;
        if (Number.isFinite(y)) {
          if (y < yMin) yMin = y;
          if (y > yMax) yMax = y;
        }
      }
    if (!Number.isFinite(yMin)) {
      yMin = 0;
      yMax = 1;
    }
    if (yMax === yMin) yMax = yMin + (Math.abs(yMin) || 1);
    const sx = (x: number) => M.left + (x / xMax) * (WIDTH - M.left - M.right);
    const sy = (y: number) => HEIGHT - M.bottom - ((y - yMin) / (yMax - yMin)) * (HEIGHT - M.top - M.bottom);
    const paths = all.map((s) => {
      const xy: XY[] = s.points
        .filter((p) => Number.isFinite(p[column]))
        .map((p) => ({ x: p[1], y: p[column]! }));
      const pts = decimate(xy, BUCKETS);
      // A lone point is a zero-length segment, which the round line cap draws as a dot.
      const d =
        pts.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("") +
        (pts.length === 1 ? "h0.01" : "");
      return { ...s, d, drawnPoints: pts.length };
    });
    const total = all.reduce((n, s) => n + s.points.length, 0);
    return { paths, xMax, yMin, yMax, total };
  }, [props.series, column]);

  const summary = `${props.title}: ${drawn.paths.length} series, ${drawn.total} points, steps 0 to ${drawn.xMax}, ${props.field} ${fmt(drawn.yMin)} to ${fmt(drawn.yMax)}`;
  return (
    <figure class="chart" data-field={props.field} data-points={drawn.total}>
      <figcaption>{props.title}</figcaption>
      <ChartSvg
        label={summary}
        top={fmt(drawn.yMax)}
        bottom={fmt(drawn.yMin)}
        end={`step ${drawn.xMax}`}
        paths={drawn.paths.map((p) => ({
          key: p.key,
          d: p.d,
          title: p.label,
          data: {
            "data-points": p.points.length,
            "data-drawn": p.drawnPoints,
            "data-seqs": p.points.map((q) => q[0]).join(","),
          },
        }))}
      />
    </figure>
  );
}

const fmt = (x: number) => (Math.abs(x) >= 0.01 || x === 0 ? x.toFixed(3) : x.toExponential(1));
