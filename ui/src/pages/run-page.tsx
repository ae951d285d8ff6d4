/**
 * One run: header (state, accuracy beside the E2E baseline, cancel), stage timeline, modules,
 * live curves and lineage. Curves and live progress come from the runEvents stream; the rest
 * is the run query, refetched (at most once a second) when the stream reports a state change.
 */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { gql, type Payload, type UserError } from "../api/graphql.ts";
import { CANCEL_RUN_MUTATION, RETRY_MODULE_MUTATION, RUN_QUERY } from "../api/queries.ts";
import { type ModuleView, type RunDetail, TERMINAL_RUN_STATES } from "../api/types.ts";
import { ArtifactLink } from "../components/artifact-link.tsx";
import { ErrorNote, StateBadge, UserErrors } from "../components/status.tsx";
import { between, dateTime, duration, percent, shortId } from "../format.ts";
import { AccuracyCurve, SplitPlanTable } from "./run/accuracy-curve.tsx";
import { Curves } from "./run/curves.tsx";
import { Lineage } from "./run/lineage.tsx";
import { ModulesTable, moduleRow } from "./run/modules-table.tsx";
import { StageTimeline } from "./run/stage-timeline.tsx";
import { useRunEvents } from "./run/use-run-events.ts";

const REFETCH_MIN_MS = 1000;
const REOPEN_MIN_MS = 5000;

function useRun(id: string) {
  const [run, setRun] = useState<RunDetail | null | undefined>(undefined);
  /** When the request that fetched `run` was sent (ms): what it says is at least that new. */
  const [fetchedAt, setFetchedAt] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const last = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const load = useCallback(() => {
    const sent = Date.now();
    last.current = sent;
    gql<{ run: RunDetail | null }>(RUN_QUERY, { id }).then(
      (d) => {
        setRun(d.run);
        setFetchedAt(sent);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  }, [id]);
  /** Refetch soon, but not more than once a second whatever the event rate. */
  const refresh = useCallback(() => {
    if (timer.current) return;
    const wait = Math.max(0, last.current + REFETCH_MIN_MS - Date.now());
    timer.current = setTimeout(() => {
      timer.current = undefined;
      load();
    }, wait);
  }, [load]);
  useEffect(() => {
    load();
    return () => clearTimeout(timer.current);
  }, [load]);
  return { run, fetchedAt, error, refresh };
}

export function RunPage({ id }: { id: string }) {
  const { run, fetchedAt, error, refresh } = useRun(id);
  const { stream, version } = useRunEvents(id);
  const [userErrors, setUserErrors] = useState<UserError[]>([]);
  const [actionError, setActionError] = useState<string | null>(null);
  const [lineageModule, setLineageModule] = useState<ModuleView | null>(null);
  const rowChangesSeen = useRef(0);

  // A state change or a new artifact in the stream means the run's rows changed: refetch them.
  useEffect(() => {
    if (stream && stream.fold.rowChanges !== rowChangesSeen.current) {
      rowChangesSeen.current = stream.fold.rowChanges;
      refresh();
    }
  }, [version, stream]);

  // The API says the run goes on while the stream ended with it (a module retried after the
  // run was cancelled or failed): follow it again. Only an answer asked for after the stream
  // ended counts (an older one still says RUNNING), and at most every few seconds.
  const endedAt = useRef<number | null>(null);
  const reopenedAt = useRef(0);
  useEffect(() => {
    if (!run || !stream) return;
    if (stream.status !== "ended") {
      endedAt.current = null;
      return;
    }
    endedAt.current ??= Date.now();
    if (TERMINAL_RUN_STATES.has(run.state) || fetchedAt <= endedAt.current) return;
    if (Date.now() - reopenedAt.current < REOPEN_MIN_MS) return;
    reopenedAt.current = Date.now();
    stream.reopen();
  }, [run, fetchedAt, stream, stream?.status]);

  if (run === undefined) return <p aria-busy="true">{error ?? "Loading…"}</p>;
  if (run === null)
    return (
      <section>
        <h1 tabIndex={-1}>Run not found</h1>
        <p>No run {id} (or your token's projects do not include it).</p>
      </section>
    );

  const fold = stream?.fold;
  const finished = TERMINAL_RUN_STATES.has(run.state);
  const baseline =
    run.kind === "INCUBATION"
      ? run.architecture.runs.nodes.find((r) => r.kind === "E2E" && r.dataset.id === run.dataset.id)
      : undefined;
  const evaluation = fold?.evaluations.findLast((e) => e.moduleIndex === null) ?? null;
  const rows = run.modules.map((m) => moduleRow(m, fold?.modules[m.index]));

  const act = async <T,>(query: string, input: Record<string, unknown>) => {
    setActionError(null);
    try {
      const data = await gql<Record<string, Payload<T>>>(query, { input });
      const payload = Object.values(data)[0]!;
      setUserErrors(payload.userErrors);
      refresh();
    } catch (e) {
      setActionError((e as Error).message);
    }
  };

  return (
    <section
      class="run"
      data-run-id={run.id}
      data-last-seq={fold?.lastSeq ?? 0}
      data-stream={stream?.status ?? "connecting"}
    >
      <h1 tabIndex={-1}>
        {run.kind} run <code>{shortId(run.id)}</code> <StateBadge state={run.state} />
      </h1>
      <dl class="facts">
        <dt>Architecture</dt>
        <dd>
          {run.architecture.name} (K = {run.architecture.numModules})
        </dd>
        <dt>Dataset</dt>
        <dd>{run.dataset.name}</dd>
        <dt>Recipe</dt>
        <dd>
          {run.recipe}, seed {run.seed}
          {run.decentralized ? ", decentralised" : ""}
        </dd>
        <dt>Started</dt>
        <dd>{dateTime(run.startedAt)}</dd>
        <dt>Duration</dt>
        <dd>{duration(between(run.startedAt, run.finishedAt))}</dd>
        <dt>Accuracy</dt>
        <dd data-accuracy={run.accuracy ?? ""}>
          {percent(run.accuracy)}
          {baseline && (
            <>
              {" "}
              beside the E2E baseline{" "}
              <a href={`#/runs/${encodeURIComponent(baseline.id)}`}>{percent(baseline.accuracy)}</a>
            </>
          )}
        </dd>
        {run.finalModel && (
          <>
            <dt>Final model</dt>
            <dd>
              <ArtifactLink artifact={run.finalModel} />
            </dd>
          </>
        )}
        <dt>Events</dt>
        <dd aria-live="polite">
          {fold?.lastSeq ?? 0} ({stream?.status ?? "connecting"}
          {stream?.error ? `: ${stream.error}` : ""})
        </dd>
      </dl>
      {run.error && <p class="error">{run.error}</p>}
      <div class="buttons">
        {!finished && (
          <button
            type="button"
            class="danger"
            onClick={() => void act(CANCEL_RUN_MUTATION, { runId: run.id })}
          >
            Cancel run
          </button>
        )}
      </div>
      <div aria-live="assertive">
        <ErrorNote error={actionError ?? error} />
        <UserErrors errors={userErrors} />
      </div>

      <h2>Stages</h2>
      <StageTimeline jobs={run.jobs} evaluatedAt={evaluation?.at ?? null} />

      {run.modules.length > 0 && (
        <>
          <h2>Modules</h2>
          <ModulesTable
            rows={rows}
            canAct={true}
            onRetry={(m) => void act(RETRY_MODULE_MUTATION, { moduleId: m.id })}
            onLineage={(m) => {
              setLineageModule(m);
              document.getElementById("lineage")?.focus();
            }}
          />
        </>
      )}

      {run.splitPlan && (
        <>
          <h2>Split plan</h2>
          <SplitPlanTable plan={run.splitPlan} />
        </>
      )}

      <h2>Accuracy</h2>
      <AccuracyCurve curve={run.accuracyCurve} />

      <h2>Curves</h2>
      {fold && <Curves fold={fold} version={version} />}

      <h2 id="lineage" tabIndex={-1}>
        Lineage {lineageModule ? `of module ${lineageModule.index}` : "of the final model"}
      </h2>
      {lineageModule && (
        <button type="button" onClick={() => setLineageModule(null)}>
          Show the final model's lineage
        </button>
      )}
      <Lineage run={run} moduleId={lineageModule?.id ?? null} />

      {fold && fold.logs.length > 0 && (
        <>
          <h2>Log</h2>
          <ol class="log">
            {fold.logs.map((l) => (
              <li key={l.seq} class={`log-${l.level.toLowerCase()}`}>
                <time>{dateTime(l.at)}</time> {l.moduleIndex !== null ? `[module ${l.moduleIndex}] ` : ""}
                {l.message}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
