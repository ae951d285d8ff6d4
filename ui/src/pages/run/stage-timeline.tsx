/** The stage timeline as an SVG (one bar per stage or module job) and, for assistive tech, a table. */
import type { JobView } from "../../api/types.ts";
import { TableHead } from "../../components/status.tsx";
import { duration } from "../../format.ts";
import { buildTimeline } from "../../state/timeline.ts";

const ROW = 16;
const LABEL = 130;
const WIDTH = 760;

export function StageTimeline({
  jobs,
  evaluatedAt,
}: {
  jobs: readonly JobView[];
  evaluatedAt: string | null;
}) {
  const now = Date.now();
  const t = buildTimeline(jobs, now);
  if (!t.bars.length || t.fromMs === null || t.toMs === null)
    return <p class="help">No job has started yet.</p>;
  const span = Math.max(1, t.toMs - t.fromMs);
  const x = (ms: number) => LABEL + ((ms - t.fromMs!) / span) * (WIDTH - LABEL - 60);
  const height = t.bars.length * ROW + 20;
  const critical = t.bars.filter((b) => b.critical);
  const wall = (b: (typeof t.bars)[number]) =>
    b.startMs === null ? null : ((b.endMs ?? now) - b.startMs) / 1000;
  const summary = `Critical path: ${critical.map((b) => `${b.label} ${duration(wall(b))}`).join(" → ")}; ${duration(t.criticalPath.wallSeconds)} in all`;
  const evalMs = evaluatedAt ? Date.parse(evaluatedAt) : null;
  return (
    <div class="timeline">
      <p data-critical-path={t.criticalPath.keys.join(" ")}>{summary}</p>
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label={`Stage timeline. ${summary}`}>
        {t.bars.map((b, i) => {
          const y = i * ROW + 2;
          const x0 = b.startMs === null ? LABEL : x(b.startMs);
          const x1 = b.startMs === null ? LABEL : Math.max(x0 + 2, x(b.endMs ?? now));
          return (
            <g key={b.key} data-key={b.key} data-critical={b.critical ? "true" : undefined}>
              <text x={LABEL - 6} y={y + 11} text-anchor="end" class="tick">
                {b.label}
              </text>
              <rect
                x={x0}
                y={y}
                width={x1 - x0}
                height={ROW - 4}
                class={`bar state-${b.state.toLowerCase()}${b.critical ? " critical" : ""}`}
              >
                <title>{`${b.label}: ${b.state}, ${duration(wall(b))}, ${b.attempts} attempt(s)`}</title>
              </rect>
              <text x={x1 + 4} y={y + 11} class="tick">
                {duration(wall(b))}
              </text>
              {b.stage === "FINETUNE" && b.startMs !== null && (
                <line x1={x0} x2={x0} y1={y - 1} y2={y + ROW - 3} class="marker">
                  <title>assembly (start of the FT job)</title>
                </line>
              )}
              {b.stage === "FINETUNE" && evalMs !== null && (
                <line x1={x(evalMs)} x2={x(evalMs)} y1={y - 1} y2={y + ROW - 3} class="marker eval">
                  <title>evaluation</title>
                </line>
              )}
            </g>
          );
        })}
      </svg>
      <p class="help legend">
        Outlined: the critical path. On the FT bar: <span class="key-assembly">|</span> assembly (the FT job's
        start), <span class="key-eval">|</span> evaluation.
      </p>
      <details>
        <summary>Timeline as a table</summary>
        <table>
          <TableHead caption="Stages" columns={["Stage", "State", "Wall time", "Attempts", "Critical"]} />
          <tbody>
            {t.bars.map((b) => (
              <tr key={b.key}>
                <td>{b.label}</td>
                <td>{b.state}</td>
                <td>{duration(wall(b))}</td>
                <td>{b.attempts}</td>
                <td>{b.critical ? "yes" : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </div>
  );
}
