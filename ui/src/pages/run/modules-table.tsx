/**
 * One row per module: the API's module rows (refetched on state changes) overlaid with the live
 * progress from the event stream (newer seq wins). 64 rows stay one plain table.
 */
import { type ModuleView, RETRYABLE_MODULE_STATES } from "../../api/types.ts";
import { ProgressBar, StateBadge, TableHead } from "../../components/status.tsx";
import { duration, number } from "../../format.ts";
import type { ModuleLive } from "../../state/run-fold.ts";

export interface ModuleRowView {
  module: ModuleView;
  state: string;
  workerId: string | null;
  step: number;
  totalSteps: number;
  loss: number | null;
  stepsPerSecond: number | null;
  etaSeconds: number | null;
}

export function moduleRow(module: ModuleView, live: ModuleLive | undefined): ModuleRowView {
  const apiSeq = module.progress?.seq ?? 0;
  const useLive = live !== undefined && live.progressSeq >= apiSeq && live.progressSeq > 0;
  const newestJob = module.jobs[module.jobs.length - 1];
  return {
    module,
    // States and workers from the API's rows (refetched on every state event): after a retry
    // they move on even where the stream has ended; progress from the stream when it is newer.
    state: module.state,
    workerId: newestJob ? newestJob.workerId : (live?.workerId ?? null),
    step: useLive ? live.step : module.step,
    totalSteps: (useLive ? live.totalSteps : module.totalSteps) || module.totalSteps,
    loss: useLive ? live.loss : module.loss,
    stepsPerSecond: live?.stepsPerSecond ?? null,
    etaSeconds: useLive ? live.etaSeconds : (module.progress?.etaSeconds ?? null),
  };
}

export function ModulesTable(props: {
  rows: readonly ModuleRowView[];
  canAct: boolean;
  onRetry: (module: ModuleView) => void;
  onLineage: (module: ModuleView) => void;
}) {
  return (
    <table class="modules">
      <TableHead
        caption="Modules of this run"
        columns={[
          "Module",
          "Blocks",
          "State",
          "Worker",
          "Shard",
          "Attempts",
          "Progress",
          "Steps/s",
          "ETA",
          "Loss",
          "Actions",
        ]}
      />
      <tbody>
        {props.rows.map((r) => {
          const m = r.module;
          // Speed and ETA mean something only while it trains.
          const training = r.state === "RUNNING";
          return (
            <tr key={m.id} data-module={m.index} data-state={r.state} data-step={r.step}>
              <th scope="row">{m.index}</th>
              <td>
                {m.blockStart}–{m.blockEnd - 1}
              </td>
              <td>
                <StateBadge state={r.state} />
              </td>
              <td>{r.workerId ?? "–"}</td>
              <td>{m.shard ?? "–"}</td>
              <td>{m.attempts}</td>
              <td>
                <ProgressBar value={r.step} max={r.totalSteps} label={`module ${m.index} progress`} />{" "}
                <small>
                  {r.step}/{r.totalSteps}
                </small>
              </td>
              <td>{training ? number(r.stepsPerSecond) : "–"}</td>
              <td>{training ? duration(r.etaSeconds) : "–"}</td>
              <td>{number(r.loss, 4)}</td>
              <td class="actions">
                <button type="button" onClick={() => props.onLineage(m)}>
                  Lineage<span class="visually-hidden"> of module {m.index}</span>
                </button>
                {props.canAct && RETRYABLE_MODULE_STATES.has(m.state) && (
                  <button type="button" onClick={() => props.onRetry(m)}>
                    Retry<span class="visually-hidden"> module {m.index}</span>
                  </button>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
