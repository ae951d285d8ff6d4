/** Every run (newest first), filtered by state, refreshed every two seconds while visible. */
import { useState } from "preact/hooks";
import { gql } from "../api/graphql.ts";
import { RUNS_QUERY } from "../api/queries.ts";
import { RUN_STATES, type RunState, type RunSummary } from "../api/types.ts";
import { ErrorNote, ProgressBar, StateBadge, TableHead } from "../components/status.tsx";
import { between, dateTime, duration, percent } from "../format.ts";
import { href, usePolling } from "../router.ts";

const REFRESH_MS = 2000;

/** Modular training's share done (the modules' steps), or the finished stages' share. */
export function runProgress(run: RunSummary): number {
  if (run.state === "SUCCEEDED") return 1;
  const total = run.modules.reduce((n, m) => n + m.totalSteps, 0);
  if (total > 0) return run.modules.reduce((n, m) => n + m.step, 0) / total;
  if (!run.stages.length) return 0;
  return run.stages.filter((s) => s.state === "SUCCEEDED").length / run.stages.length;
}

export function RunsList({ state }: { state: string | null }) {
  const filter = RUN_STATES.includes(state as RunState) ? (state as RunState) : null;
  const [runs, setRuns] = useState<{ totalCount: number; nodes: RunSummary[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  usePolling(
    () =>
      gql<{ runs: { totalCount: number; nodes: RunSummary[] } }>(RUNS_QUERY, { state: filter }).then(
        (data) => {
          setRuns(data.runs);
          setError(null);
        },
        (e: Error) => setError(e.message),
      ),
    REFRESH_MS,
    [filter],
  );
  return (
    <section>
      <h1 tabIndex={-1}>Runs</h1>
      <div class="toolbar">
        <label>
          State{" "}
          <select
            value={filter ?? ""}
            onChange={(e) => {
              location.hash = href.runs((e.target as HTMLSelectElement).value || null);
            }}
          >
            <option value="">all</option>
            {RUN_STATES.map((s) => (
              <option key={s} value={s}>
                {s.toLowerCase()}
              </option>
            ))}
          </select>
        </label>
        <span aria-live="polite">
          {runs ? `${runs.totalCount} run${runs.totalCount === 1 ? "" : "s"}` : "loading…"}
        </span>
      </div>
      <ErrorNote error={error} />
      <table class="runs">
        <TableHead
          caption="Runs, newest first"
          columns={[
            "Run",
            "State",
            "Kind",
            "Architecture",
            "Dataset",
            "Progress",
            "Accuracy",
            "Started",
            "Duration",
          ]}
        />
        <tbody>
          {runs?.nodes.map((run) => (
            <tr key={run.id} data-run-id={run.id} data-state={run.state}>
              <td>
                <a href={href.run(run.id)}>{dateTime(run.createdAt)}</a>
              </td>
              <td>
                <StateBadge state={run.state} />
              </td>
              <td>{run.kind}</td>
              <td>{run.architecture.name}</td>
              <td>{run.dataset.name}</td>
              <td>
                <ProgressBar
                  value={runProgress(run)}
                  max={1}
                  label={`progress of the run started ${dateTime(run.createdAt)}`}
                />
              </td>
              <td>{percent(run.accuracy)}</td>
              <td>{dateTime(run.startedAt)}</td>
              <td>{duration(between(run.startedAt, run.finishedAt))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {runs && !runs.nodes.length && (
        <p>
          No runs{filter ? ` in state ${filter}` : ""} yet. <a href={href.start()}>Start one.</a>
        </p>
      )}
    </section>
  );
}
