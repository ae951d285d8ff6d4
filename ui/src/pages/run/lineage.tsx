/**
 * Provenance as a small left-to-right graph: meta model → module checkpoints → module weights →
 * assembled → fine-tuned → ONNX export. Each node links to its artifact's download.
 */
import { useEffect, useState } from "preact/hooks";
import { gql } from "../../api/graphql.ts";
import { MODULE_LINEAGE_QUERY } from "../../api/queries.ts";
import type { ArtifactRef, ModuleLineageView, RunDetail } from "../../api/types.ts";
import { ArtifactLink } from "../../components/artifact-link.tsx";
import { ErrorNote } from "../../components/status.tsx";

interface Column {
  title: string;
  artifacts: ArtifactRef[];
  /** Shown when there is no artifact (yet). */
  empty: string;
}

const byKind = (run: RunDetail, kind: ArtifactRef["kind"]) => run.artifacts.filter((a) => a.kind === kind);
const runMeta = (run: RunDetail): ArtifactRef[] => {
  const registered = run.metaModel?.checkpoint;
  if (registered) return [registered];
  return byKind(run, "WEIGHTS")
    .filter((a) => a.module === null && run.kind === "INCUBATION")
    .slice(0, 1);
};
const tail = (run: RunDetail): Column[] => [
  { title: "Assembled", artifacts: byKind(run, "ASSEMBLED_MODEL"), empty: "not assembled yet" },
  { title: "Fine-tuned", artifacts: byKind(run, "FINAL_WEIGHTS"), empty: "not fine-tuned yet" },
  { title: "ONNX export", artifacts: byKind(run, "FINAL_MODEL_ONNX"), empty: "not exported yet" },
];

function finalModelColumns(run: RunDetail): Column[] {
  return [
    { title: "Meta model", artifacts: runMeta(run), empty: "none yet" },
    {
      title: "Module weights",
      artifacts: byKind(run, "WEIGHTS")
        .filter((a) => a.module !== null)
        .sort((a, b) => a.module!.index - b.module!.index),
      empty: "no module trained yet",
    },
    ...tail(run),
  ];
}

function moduleColumns(run: RunDetail, m: ModuleLineageView): Column[] {
  const meta = m.lineage.metaModel?.checkpoint;
  return [
    {
      title: `Meta model${m.lineage.metaModel ? ` ${m.lineage.metaModel.name}` : ""}`,
      artifacts: meta ? [meta] : [],
      empty: "not recorded yet",
    },
    { title: "Checkpoints", artifacts: m.lineage.checkpoints, empty: "none saved yet" },
    {
      title: `Module ${m.index} weights`,
      artifacts: byKind(run, "WEIGHTS").filter((a) => a.module?.index === m.index),
      empty: "not trained yet",
    },
    {
      title: "Assembled",
      artifacts: m.lineage.assembledInto ? [m.lineage.assembledInto] : [],
      empty: "not assembled yet",
    },
    ...tail(run).slice(1),
  ];
}

function artifactLabel(a: ArtifactRef): string {
  if (a.kind === "CHECKPOINT") return `step ${a.step ?? "?"}`;
  if (a.module) return `module ${a.module.index}`;
  return a.kind.toLowerCase().replace(/_/g, " ");
}

export function Lineage({ run, moduleId }: { run: RunDetail; moduleId: string | null }) {
  const [lineage, setLineage] = useState<ModuleLineageView | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Refetched with the run (its artifacts list changes as jobs finish).
  useEffect(() => {
    if (!moduleId) return setLineage(null);
    gql<{ node: ModuleLineageView | null }>(MODULE_LINEAGE_QUERY, { id: moduleId }).then(
      (d) => setLineage(d.node),
      (e: Error) => setError(e.message),
    );
  }, [moduleId, run]);
  const columns = moduleId ? (lineage ? moduleColumns(run, lineage) : []) : finalModelColumns(run);
  return (
    <div>
      <ErrorNote error={error} />
      <ol
        class="lineage"
        aria-label={moduleId ? `Lineage of module ${lineage?.index ?? ""}` : "Lineage of the final model"}
      >
        {columns.map((c) => (
          <li key={c.title} class="lineage-node" data-node={c.title}>
            <h3>{c.title}</h3>
            {c.artifacts.length ? (
              <ul>
                {c.artifacts.map((a) => (
                  <li key={a.sha256}>
                    <ArtifactLink artifact={a} label={artifactLabel(a)} />
                  </li>
                ))}
              </ul>
            ) : (
              <p class="help">{c.empty}</p>
            )}
          </li>
        ))}
      </ol>
    </div>
  );
}
