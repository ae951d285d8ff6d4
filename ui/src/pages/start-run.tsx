/** startRun from a form: the mutation's userErrors are shown next to the form, by field. */
import { useEffect, useState } from "preact/hooks";
import { gql, type Payload, type UserError } from "../api/graphql.ts";
import { START_FORM_QUERY, START_RUN_MUTATION } from "../api/queries.ts";
import { RUN_KINDS, type RunKind, type SplitPlanning } from "../api/types.ts";
import { ErrorNote, UserErrors } from "../components/status.tsx";
import { href } from "../router.ts";

interface Choices {
  architectures: { nodes: { id: string; name: string; numModules: number }[] };
  datasets: { nodes: { id: string; name: string }[] };
  metaModels: { nodes: { id: string; name: string; numModules: number }[] };
  /** Finished runs: the INCUBATION ones can lend their modules to a reuse run. */
  runs: { nodes: { id: string; kind: RunKind; createdAt: string; architecture: { name: string } }[] };
}

/** "2, 3" → [2, 3]; null when it is not a comma-separated list of module indexes. */
function parseIndexes(text: string): number[] | null {
  if (!text.trim()) return [];
  const parts = text.split(",").map((p) => p.trim());
  return parts.every((p) => /^\d+$/.test(p)) ? parts.map(Number) : null;
}

const RECIPES = ["deit", "deit3"] as const;

/** StartRunInput.split (schema.graphql `SplitPlanning`), the default first. */
const SPLITS: readonly [SplitPlanning, string][] = [
  ["ARCHITECTURE", "the architecture's modules"],
  ["BALANCED", "balanced: same K, boundaries so the MT jobs finish together"],
  ["AUTO", "auto: K and boundaries from the planner"],
];

/** A labelled <select> of [value, text] options, with optional help text tied to it. */
function Choice(props: { name: string; label: string; options: readonly [string, string][]; help?: string }) {
  const helpId = props.help ? `${props.name}-help` : undefined;
  return (
    <>
      <label for={props.name}>{props.label}</label>
      <select id={props.name} name={props.name} aria-describedby={helpId}>
        {props.options.map(([value, text]) => (
          <option key={value} value={value}>
            {text}
          </option>
        ))}
      </select>
      {props.help && (
        <p id={helpId} class="help">
          {props.help}
        </p>
      )}
    </>
  );
}

export function StartRunPage() {
  const [choices, setChoices] = useState<Choices | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [userErrors, setUserErrors] = useState<UserError[]>([]);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    gql<Choices>(START_FORM_QUERY).then(setChoices, (e: Error) => setError(e.message));
  }, []);

  const submit = async (form: HTMLFormElement) => {
    const f = new FormData(form);
    const text = String(f.get("overrides") ?? "").trim();
    let overrides: unknown = null;
    if (text) {
      try {
        overrides = JSON.parse(text);
      } catch {
        setUserErrors([
          {
            field: ["input", "overrides"],
            message: 'not JSON: write an object, e.g. {"batchSize": 64}',
            code: "INVALID",
          },
        ]);
        return;
      }
    }
    const retrain = parseIndexes(String(f.get("retrain") ?? ""));
    if (retrain === null) {
      setUserErrors([
        {
          field: ["input", "retrain"],
          message: "write module indexes separated by commas, e.g. 2 or 1, 3",
          code: "INVALID",
        },
      ]);
      return;
    }
    const input = {
      kind: f.get("kind") as RunKind,
      architectureId: f.get("architectureId"),
      datasetId: f.get("datasetId"),
      ...(f.get("metaModelId") ? { metaModelId: f.get("metaModelId") } : {}),
      split: f.get("split") as SplitPlanning,
      ...(f.get("reuseModulesFrom") ? { reuseModulesFrom: f.get("reuseModulesFrom"), retrain } : {}),
      ...(!f.get("reuseModulesFrom") && retrain.length ? { retrain } : {}),
      recipe: f.get("recipe"),
      seed: Number(f.get("seed")),
      priority: Number(f.get("priority")),
      decentralized: f.get("decentralized") === "on",
      ...(overrides !== null ? { overrides } : {}),
    };
    setBusy(true);
    setError(null);
    try {
      const { startRun } = await gql<{ startRun: Payload<{ run: { id: string } | null }> }>(
        START_RUN_MUTATION,
        { input },
      );
      setUserErrors(startRun.userErrors);
      if (startRun.run && !startRun.userErrors.length) location.hash = href.run(startRun.run.id);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section>
      <h1 tabIndex={-1}>Start a run</h1>
      <ErrorNote error={error} />
      <form
        class="form"
        aria-busy={busy}
        onSubmit={(e) => {
          e.preventDefault();
          void submit(e.currentTarget);
        }}
      >
        <Choice name="kind" label="Kind" options={RUN_KINDS.map((k) => [k, k])} />
        <Choice
          name="architectureId"
          label="Architecture"
          options={choices?.architectures.nodes.map((a) => [a.id, `${a.name} (K = ${a.numModules})`]) ?? []}
        />
        <Choice
          name="datasetId"
          label="Dataset"
          options={choices?.datasets.nodes.map((d) => [d.id, d.name]) ?? []}
        />
        <Choice
          name="metaModelId"
          label="Meta model"
          help="Incubation runs only."
          options={[
            ["", "pre-train one (PT stage)"],
            ...(choices?.metaModels.nodes.map((m): [string, string] => [
              m.id,
              `${m.name} (K = ${m.numModules})`,
            ]) ?? []),
          ]}
        />
        <Choice
          name="reuseModulesFrom"
          label="Reuse modules from"
          help="Incubation runs only: take this finished run's meta model and modules; train only those listed below."
          options={[
            ["", "no run (train every module)"],
            ...(choices?.runs.nodes
              .filter((r) => r.kind === "INCUBATION")
              .map((r): [string, string] => [r.id, `${r.architecture.name}, ${r.createdAt}`]) ?? []),
          ]}
        />
        <Choice
          name="split"
          label="Module split"
          help="Incubation runs only: BALANCED and AUTO measure this machine first and show the plan on the run page."
          options={SPLITS}
        />
        <label for="retrain">Modules to retrain</label>
        <input id="retrain" name="retrain" type="text" inputMode="numeric" placeholder="e.g. 2 or 1, 3" />
        <Choice name="recipe" label="Recipe" options={RECIPES.map((r) => [r, r])} />
        <label for="seed">Seed</label>
        <input id="seed" name="seed" type="number" min={0} value={0} />
        <label for="priority">Priority</label>
        <input id="priority" name="priority" type="number" value={0} />
        <label class="check">
          <input name="decentralized" type="checkbox" /> Decentralised (module i trains on shard i only)
        </label>
        <label for="overrides">Recipe overrides (JSON)</label>
        <textarea
          id="overrides"
          name="overrides"
          rows={4}
          spellcheck={false}
          placeholder='{"batchSize": 64, "steps": {"modular": 200}}'
        />
        <div class="buttons">
          <button type="submit" disabled={busy || !choices}>
            Start run
          </button>
        </div>
        <UserErrors errors={userErrors} />
      </form>
    </section>
  );
}
