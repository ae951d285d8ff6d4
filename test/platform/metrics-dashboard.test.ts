/**
 * The Grafana dashboard (docs/grafana/incubator.json) cannot drift from the code: every metric
 * its queries read exists in the registry (histogram series by their base name), every label
 * they select or group by is one of that metric's labels, and every incubator_ metric the
 * registry defines has a panel.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { enableProcessMetrics, registry } from "../../src/platform/metrics/metrics.ts";

const dashboard = JSON.parse(
  readFileSync(new URL("../../docs/grafana/incubator.json", import.meta.url), "utf8"),
);

interface Panel {
  title?: string;
  type?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function queries(panels: Panel[]): { panel: string; expr: string }[] {
  return panels.flatMap((p) => [
    ...(p.targets ?? []).map((t) => ({ panel: p.title ?? "", expr: t.expr ?? "" })),
    ...queries(p.panels ?? []),
  ]);
}

// Scrape-job label Prometheus adds to every series, Grafana's variables, and PromQL's own words.
const PROMETHEUS_LABELS = new Set(["job", "instance"]);
const METRIC = /\b((?:incubator|process|nodejs)_[a-z0-9_]+)\b/g;
const SUFFIX = /_(bucket|count|sum)$/;

enableProcessMetrics();
const metrics = new Map(
  registry.getMetricsAsArray().map((m) => {
    const labels = (m as unknown as { labelNames: string[] }).labelNames ?? [];
    return [m.name, { type: String(m.type), labels: new Set(labels) }] as const;
  }),
);

/** The registry metric a series name belongs to (a histogram's _bucket/_count/_sum included). */
function metricOf(series: string) {
  const exact = metrics.get(series);
  if (exact) return { name: series, ...exact, bucket: false };
  const base = series.replace(SUFFIX, "");
  const histogram = metrics.get(base);
  if (histogram && histogram.type === "histogram" && base !== series)
    return { name: base, ...histogram, bucket: series.endsWith("_bucket") };
  return undefined;
}

describe("docs/grafana/incubator.json", () => {
  const all = queries(dashboard.panels as Panel[]);

  it("has queries", () => {
    expect(all.length).toBeGreaterThan(15);
    expect(all.every((q) => q.expr.length > 0)).toBe(true);
  });

  it("reads only metrics the registry defines, with their labels", () => {
    const problems: string[] = [];
    for (const { panel, expr } of all) {
      const used = [...expr.matchAll(METRIC)].map((m) => m[1]!);
      if (used.length === 0) problems.push(`${panel}: no metric in ${expr}`);
      const known = used.map(metricOf);
      used.forEach((name, i) => {
        if (!known[i]) problems.push(`${panel}: ${name} is not in the registry`);
      });
      // Labels in selectors: metric{label="…", …}.
      for (const m of expr.matchAll(/\b([a-z_:][a-z0-9_:]*)\{([^}]*)\}/g)) {
        const metric = metricOf(m[1]!);
        for (const [, label] of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
          if (PROMETHEUS_LABELS.has(label!) || (label === "le" && metric?.bucket)) continue;
          if (metric && !metric.labels.has(label!)) problems.push(`${panel}: ${m[1]} has no label ${label}`);
        }
      }
      // Labels grouped by: each must belong to some metric of the query (le: to a histogram's buckets).
      for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) {
        for (const label of m[1]!.split(",").map((s) => s.trim())) {
          if (PROMETHEUS_LABELS.has(label)) continue;
          const ok = known.some((k) => k && (k.labels.has(label) || (label === "le" && k.bucket)));
          if (!ok) problems.push(`${panel}: grouped by ${label}, which none of its metrics has`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("has a panel for every incubator_ metric", () => {
    const read = new Set(
      all.flatMap(({ expr }) => [...expr.matchAll(METRIC)].map((m) => metricOf(m[1]!)?.name)),
    );
    const unread = [...metrics.keys()].filter((name) => name.startsWith("incubator_") && !read.has(name));
    expect(unread).toEqual([]);
  });
});
