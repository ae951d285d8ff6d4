/**
 * The Grafana dashboard (docs/grafana/incubator.json) cannot drift from the code: every query
 * parses as PromQL (Prometheus' own grammar, @prometheus-io/lezer-promql), every metric it reads
 * exists in the registry (histogram series by their base name), every label it matches or
 * groups by is one of that metric's labels, and every incubator_ metric has a panel.
 */
import { readFileSync } from "node:fs";
import { parser } from "@prometheus-io/lezer-promql";
import { describe, expect, it } from "vitest";
import { enableProcessMetrics, registry } from "../../src/platform/metrics/metrics.ts";

const dashboard = JSON.parse(
  readFileSync(new URL("../../docs/grafana/incubator.json", import.meta.url), "utf8"),
);

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function queries(panels: Panel[]): { panel: string; expr: string }[] {
  return panels.flatMap((p) => [
    ...(p.targets ?? []).map((t) => ({ panel: p.title ?? "", expr: t.expr ?? "" })),
    ...queries(p.panels ?? []),
  ]);
}

// Labels Prometheus adds to every series it scrapes.
const PROMETHEUS_LABELS = new Set(["job", "instance"]);
const SUFFIX = /_(bucket|count|sum)$/;
/** Grafana's variables, as values PromQL accepts, before parsing. */
const GRAFANA_VARIABLES: Record<string, string> = { __rate_interval: "5m", __range: "6h", job: ".*" };

enableProcessMetrics();
const metrics = new Map(
  registry.getMetricsAsArray().map((m) => {
    const labels = (m as unknown as { labelNames?: string[] }).labelNames ?? [];
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

interface Parsed {
  errors: string[];
  /** Each vector selector: its metric name and the labels it matches on. */
  selectors: { series: string; labels: string[] }[];
  /** Labels of every `by (…)` / `without (…)`. */
  grouping: string[];
}

/** An expression through Prometheus' own PromQL grammar (the one its web UI uses). */
function parse(expr: string): Parsed {
  const source = expr.replace(/\$(\w+)/g, (whole, name: string) => GRAFANA_VARIABLES[name] ?? whole);
  const out: Parsed = { errors: [], selectors: [], grouping: [] };
  if (source.includes("$")) out.errors.push(`unknown Grafana variable in ${expr}`);
  const text = (n: { from: number; to: number }) => source.slice(n.from, n.to);
  parser.parse(source).iterate({
    enter(node) {
      if (node.type.isError)
        out.errors.push(`does not parse at "${source.slice(node.from, node.from + 30)}"`);
      if (node.name === "VectorSelector") {
        const name = node.node.getChild("Identifier");
        const matchers = node.node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? [];
        out.selectors.push({
          series: name ? text(name) : "",
          labels: matchers.map((m) => text(m.getChild("LabelName")!)),
        });
      }
      if (node.name === "GroupingLabels") out.grouping.push(...node.node.getChildren("LabelName").map(text));
    },
  });
  return out;
}

describe("docs/grafana/incubator.json", () => {
  const all = queries(dashboard.panels as Panel[]);

  it("has queries", () => {
    expect(all.length).toBeGreaterThan(15);
    expect(all.every((q) => q.expr.length > 0)).toBe(true);
  });

  it("parses as PromQL and reads only metrics the registry defines, with their labels", () => {
    const problems: string[] = [];
    for (const { panel, expr } of all) {
      const { errors, selectors, grouping } = parse(expr);
      problems.push(...errors.map((e) => `${panel}: ${e}`));
      if (selectors.length === 0) problems.push(`${panel}: no metric in ${expr}`);
      const known = selectors.map((s) => metricOf(s.series));
      selectors.forEach(({ series, labels }, i) => {
        const metric = known[i];
        if (!metric) {
          problems.push(`${panel}: ${series} is not in the registry`);
          return;
        }
        for (const label of labels) {
          if (PROMETHEUS_LABELS.has(label) || (label === "le" && metric.bucket)) continue;
          if (!metric.labels.has(label)) problems.push(`${panel}: ${series} has no label ${label}`);
        }
      });
      // A label grouped by must belong to a metric of the query (le: to a histogram's buckets).
      for (const label of grouping) {
        if (PROMETHEUS_LABELS.has(label)) continue;
        const ok = known.some((k) => k && (k.labels.has(label) || (label === "le" && k.bucket)));
        if (!ok) problems.push(`${panel}: grouped by ${label}, which none of its metrics has`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("has a panel for every incubator_ metric", () => {
    const read = new Set(
      all.flatMap(({ expr }) => parse(expr).selectors.map((s) => metricOf(s.series)?.name)),
    );
    const unread = [...metrics.keys()].filter((name) => name.startsWith("incubator_") && !read.has(name));
    expect(unread).toEqual([]);
  });
});
