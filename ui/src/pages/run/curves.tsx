/** Loss and learning-rate curves from the event fold, for the whole run or one module. */
import { useMemo, useState } from "preact/hooks";
import { type ChartSeries, LineChart } from "../../components/line-chart.tsx";
import type { FoldData } from "../../state/run-fold.ts";

const RUN_ORDER = ["run:PRETRAIN", "run:E2E", "run:FINETUNE"];

function label(key: string): string {
  if (key.startsWith("module:")) return `module ${key.slice(7)} (MT)`;
  return (
    { "run:PRETRAIN": "meta pre-training (PT)", "run:FINETUNE": "fine-tuning (FT)", "run:E2E": "end to end" }[
      key
    ] ?? key
  );
}

export function Curves({ fold, version }: { fold: FoldData; version: number }) {
  const [selected, setSelected] = useState("all");
  // The fold is mutated in place; `version` says when it changed.
  const series = useMemo<ChartSeries[]>(() => {
    const keys = Object.keys(fold.series).sort((a, b) => {
      const ra = RUN_ORDER.indexOf(a);
      const rb = RUN_ORDER.indexOf(b);
      if (ra >= 0 || rb >= 0) return (ra < 0 ? 1.5 : ra) - (rb < 0 ? 1.5 : rb);
      return Number(a.slice(7)) - Number(b.slice(7));
    });
    return keys
      .filter((k) => selected === "all" || k === selected || (selected === "run" && k.startsWith("run:")))
      .map((k) => ({ key: k, label: label(k), points: fold.series[k]! }));
  }, [fold, version, selected]);
  const options = Object.keys(fold.series).filter((k) => k.startsWith("module:"));
  options.sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)));
  return (
    <div class="curves">
      <label>
        Series{" "}
        <select value={selected} onChange={(e) => setSelected((e.target as HTMLSelectElement).value)}>
          <option value="all">all</option>
          <option value="run">run stages (PT, FT)</option>
          {options.map((k) => (
            <option key={k} value={k}>
              {label(k)}
            </option>
          ))}
        </select>
      </label>
      <div class="charts">
        <LineChart title="Training loss" field="loss" series={series} />
        <LineChart title="Learning rate" field="lr" series={series} />
      </div>
    </div>
  );
}
