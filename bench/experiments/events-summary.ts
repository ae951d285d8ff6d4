/**
 * The tables of bench/RESULTS.md "Run-event latency" from the JSON reports events-ab.sh wrote:
 * one row per report, then per subscriber count the median of the per-pair p99 ratios
 * (old / new) with their range.
 *
 * Usage: npx tsx bench/experiments/events-summary.ts .tmp/bench-events
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { EventBenchReport } from "../events.ts";

const dir = process.argv[2] ?? ".tmp/bench-events";
const reports = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .flatMap((file) => {
    const text = readFileSync(join(dir, file), "utf8").trim();
    if (!text) return [];
    const [build, subscribers, pair] = file.replace(/\.json$/, "").split("-");
    return [
      {
        build: build!,
        subscribers: Number(subscribers),
        pair: Number(pair),
        report: JSON.parse(text) as EventBenchReport,
      },
    ];
  });

console.log(
  "| build | pair | subscribers × API processes | deliveries | p50 | p90 | p99 | max | GC pauses (total / max) | loop delay p99 | executions/event | load avg (1 min) start → end |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const { build, pair, report } of reports) {
  for (const p of report.points) {
    const b = p.breakdown;
    console.log(
      `| ${build} (${report.commit}) | ${pair} | ${p.subscribers} × ${report.options.apiProcesses} | ${p.deliveries}/${p.expected} | ` +
        `${p.p50_ms} | ${p.p90_ms} | **${p.p99_ms}** | ${p.max_ms} | ${b.gc.count}: ${b.gc.total_ms} / ${b.gc.max_ms} ms | ` +
        `${b.event_loop_delay_p99_ms} ms | ${b.executions_per_event ?? "–"} | ${report.machine.loadavg_start[0]} → ${report.machine.loadavg_end[0]} |`,
    );
  }
}

const bySubscribers = new Map<number, { old?: number; new?: number }[]>();
for (const { build, subscribers, pair, report } of reports) {
  const pairs = bySubscribers.get(subscribers) ?? [];
  bySubscribers.set(subscribers, pairs);
  pairs[pair] ??= {};
  pairs[pair]![build as "old" | "new"] = report.points[0]!.p99_ms;
}
for (const [subscribers, pairs] of bySubscribers) {
  const ratios = pairs
    .filter((p) => p?.old !== undefined && p.new !== undefined)
    .map((p) => p.old! / p.new!)
    .sort((a, b) => a - b);
  if (ratios.length === 0) continue;
  const median = ratios[Math.floor(ratios.length / 2)]!;
  console.log(
    `\n${subscribers} subscribers: p99 old/new per pair ${ratios.map((r) => r.toFixed(2)).join(", ")}; ` +
      `median ${median.toFixed(2)} (range ${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)})`,
  );
}
