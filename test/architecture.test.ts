/**
 * The import structure of src/: no module imports itself back through others, and each layer
 * imports only itself and the layers below it (engine ← data ← incubation ← platform ← api ← cli).
 *
 * Method: a walker over the TypeScript sources with the compiler's own parser (no bundler, no
 * extra dependency). Every relative module reference counts: `import`, `import type`,
 * `export … from` (type-only too) and dynamic `import("…")`. Type-only imports are included on
 * purpose — a type-only cycle still means the two files cannot be read, moved or split apart,
 * and it turns into a runtime cycle as soon as someone imports a value. src/generated (Prisma's
 * client) is not ours and is left out; package imports are not edges.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
const SRC = join(ROOT, "src");
const LAYERS = ["engine", "data", "incubation", "platform", "api", "cli"] as const;

interface Edge {
  to: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return path === join(SRC, "generated") ? [] : sourceFiles(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** The relative module references of one file, resolved to repository-relative paths. */
function importsOf(file: string): Edge[] {
  const sf = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true);
  const edges: Edge[] = [];
  const add = (spec: ts.Expression | undefined, typeOnly: boolean) => {
    if (!spec || !ts.isStringLiteral(spec) || !spec.text.startsWith(".")) return;
    edges.push({ to: relative(ROOT, resolve(dirname(file), spec.text)), typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const bindings = clause?.namedBindings;
      const allNamedTypes =
        !!bindings &&
        ts.isNamedImports(bindings) &&
        bindings.elements.length > 0 &&
        bindings.elements.every((e) => e.isTypeOnly) &&
        !clause.name;
      add(node.moduleSpecifier, !!clause && (clause.isTypeOnly || allNamedTypes));
    } else if (ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edges;
}

function importGraph(): Map<string, Edge[]> {
  const graph = new Map<string, Edge[]>();
  for (const f of sourceFiles(SRC)) graph.set(relative(ROOT, f), importsOf(f));
  return graph;
}

/** Strongly connected components with more than one module (or a module importing itself). */
function cycles(graph: ReadonlyMap<string, readonly { to: string }[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const { to } of graph.get(v) ?? []) {
      if (!graph.has(to)) continue;
      if (!index.has(to)) {
        connect(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, index.get(to)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).some((e) => e.to === v)) found.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) connect(v);
  return found;
}

function layerOf(path: string): number {
  const top = path.split("/")[1] ?? "";
  return LAYERS.indexOf(top as (typeof LAYERS)[number]);
}

describe("src import structure", () => {
  const graph = importGraph();

  it("reads the real import graph", () => {
    // Guards the walker itself: references into src/ must land on files it read.
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get("src/engine/ir/builder.ts")).toContainEqual({
      to: "src/engine/ir/ops.ts",
      typeOnly: false,
    });
    expect(graph.get("src/engine/ir/graph.ts")).toContainEqual({
      to: "src/engine/ir/ops.ts",
      typeOnly: true,
    });
    const unresolved = [...graph].flatMap(([from, es]) =>
      es
        .filter((e) => e.to.startsWith("src/") && !e.to.startsWith("src/generated/") && !graph.has(e.to))
        .map((e) => `${from} → ${e.to}`),
    );
    expect(unresolved).toEqual([]);
  });

  it("finds cycles, type-only ones included (the detector on a known graph)", () => {
    const g = new Map([
      ["a", [{ to: "b" }]],
      ["b", [{ to: "c" }]],
      ["c", [{ to: "a" }]],
      ["d", [{ to: "a" }, { to: "d" }]],
      ["e", [{ to: "a" }]],
    ]);
    expect(cycles(g)).toEqual([["a", "b", "c"], ["d"]]);
  });

  it("has no import cycle", () => {
    expect(cycles(graph)).toEqual([]);
  });

  it("imports only its own layer and those below it", () => {
    const upward: string[] = [];
    for (const [from, edges] of graph) {
      const own = layerOf(from);
      if (own < 0) continue; // src/generated is skipped; top-level files belong to no layer
      for (const e of edges) {
        const theirs = layerOf(e.to);
        if (theirs > own) upward.push(`${from} → ${e.to}`);
      }
    }
    expect(upward).toEqual([]);
  });
});
