/**
 * A readable text form of a graph, one line per value-producing statement, for debugging:
 *
 *   graph step: 4 inputs, 2 constants, 31 nodes, 3 outputs
 *     input  %x: float32[N,8]
 *     const  %3: float32[] = 0.5
 *     %7: float32[N,4] = matmul(%x, %w) {transB: true}
 *     output loss = %21: float32[]
 */
import type { Graph, Node, Value } from "./graph.ts";

export function dumpGraph(g: Graph, indent = ""): string {
  const lines: string[] = [
    `${indent}graph ${g.name}: ${g.inputs.length} inputs, ${g.constants.length} constants, ${g.nodes.length} nodes, ${g.outputs.length} outputs`,
  ];
  const pad = `${indent}  `;
  for (const v of g.inputs) lines.push(`${pad}input  ${v}`);
  for (const [outer, v] of g.captures) lines.push(`${pad}capture ${v} ← ${outer.graph.name}`);
  for (const v of g.constants) lines.push(`${pad}const  ${v} = ${previewData(v)}`);
  for (const n of g.nodes) {
    lines.push(`${pad}${formatNode(n)}`);
    if (n.op === "loop") lines.push(dumpGraph((n.attrs as { body: Graph }).body, `${pad}  `));
  }
  for (const o of g.outputs) lines.push(`${pad}output ${o.name} = ${o.value}`);
  return lines.join("\n");
}

function formatNode(n: Node): string {
  const outs = n.outputs.map(String).join(", ");
  const ins = n.inputs.map((v) => `%${v.name ?? v.id}`).join(", ");
  const attrs = Object.entries(n.attrs as Record<string, unknown>)
    .filter(([k]) => k !== "body")
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join(", ");
  return `${outs} = ${n.op}(${ins})${attrs ? ` {${attrs}}` : ""}`;
}

function previewData(v: Value): string {
  const d = v.data;
  if (!d) return "?";
  const items = Array.from(d.slice(0, 6) as ArrayLike<number | bigint>, (x) => String(x));
  return d.length === 1 ? items[0]! : `[${items.join(", ")}${d.length > 6 ? `, … (${d.length})` : ""}]`;
}
