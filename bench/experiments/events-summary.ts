/**
 * The tables of bench/RESULTS.md "Run-event latency" from the JSON reports events-ab.sh wrote:
 * one row per report, then per subscriber count the median of the per-pair p99 ratios
 * (old / new) with their range, and the same for the API's CPU time per delivery (less
 * sensitive to what else runs on the machine than latency).
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
  "| build | pair | subscribers × API processes | deliveries | p50 | p90 | p99 | max | GC pauses (total / max) | loop delay p99 | executions/event | API CPU µs/delivery | client CPU µs/delivery | load avg (1 min) start → end |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const { build, pair, report } of reports) {
  for (const p of report.points) {
    const b = p.breakdown;
    console.log(
      `| ${build} (${report.commit}) | ${pair} | ${p.subscribers} × ${report.options.apiProcesses} | ${p.deliveries}/${p.expected} | ` +
        `${p.p50_ms} | ${p.p90_ms} | **${p.p99_ms}** | ${p.max_ms} | ${b.gc.count}: ${b.gc.total_ms} / ${b.gc.max_ms} ms | ` +
        `${b.event_loop_delay_p99_ms} ms | ${b.executions_per_event ?? "–"} | ${b.api_cpu_us_per_delivery ?? "–"} | ` +
        `${b.client_cpu_us_per_delivery ?? "–"} | ${report.machine.loadavg_start[0]} → ${report.machine.loadavg_end[0]} |`,
    );
  }
}

type Pick = (report: EventBenchReport) => number | null | undefined;
const measures: [string, Pick][] = [
  ["p99", (r) => r.points[0]?.p99_ms],
  ["API CPU per delivery", (r) => r.points[0]?.breakdown.api_cpu_us_per_delivery],
];
for (const [what, pick] of measures) {
  const bySubscribers = new Map<number, { old?: number; new?: number }[]>();
  for (const { build, subscribers, pair, report } of reports) {
    const value = pick(report);
    if (value === null || value === undefined) continue;
    const pairs = bySubscribers.get(subscribers) ?? [];
    bySubscribers.set(subscribers, pairs);
    pairs[pair] ??= {};
    pairs[pair]![build as "old" | "new"] = value;
  }
  for (const [subscribers, pairs] of bySubscribers) {
    const ratios = pairs
      .filter((p) => p?.old !== undefined && p.new !== undefined)
      .map((p) => p.old! / p.new!)
      .sort((a, b) => a - b);
    if (ratios.length === 0) continue;
    const median = ratios[Math.floor(ratios.length / 2)]!;
    console.log(
      `\n${subscribers} subscribers: ${what} old/new per pair ${ratios.map((r) => r.toFixed(2)).join(", ")}; ` +
        `median ${median.toFixed(2)} (range ${ratios[0]!.toFixed(2)}–${ratios.at(-1)!.toFixed(2)})`,
    );
  }
}
