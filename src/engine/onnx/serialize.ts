/**
 * IR graph → ONNX ModelProto bytes.
 *
 * Naming: root-graph inputs and outputs keep their IR names (they are the session's API);
 * everything else is named `<op>#<id>` — ids are unique across a graph and its loop bodies, so
 * subgraph names never shadow outer ones, and the `#` keeps them apart from user names.
 *
 * Symbolic dims: where a lowering needs a runtime shape (Expand, ConstantOfShape, Reshape with
 * two unknowns), each symbol is read once per graph from an input that carries it (`Shape` with
 * start/end), products like "16*N" are multiplied out, and the pieces are concatenated.
 */
import type { DType, TensorData } from "../ir/dtype.ts";
import { allocData } from "../ir/dtype.ts";
import type { Graph, Node, Value } from "../ir/graph.ts";
import { type Dim, formatShape, isStaticDim, parseDim, type Shape } from "../ir/shape.ts";
import { LOWERINGS } from "./lower.ts";
import { type LowerContext, MS_DOMAIN } from "./lower-context.ts";
import {
  type AttributeProto,
  attr,
  encodeModel,
  type GraphProto,
  type NodeProto,
  ONNX_DTYPE,
  onnx,
  type TensorProto,
  tensorProto,
  valueInfo,
} from "./proto.ts";

export const OPSET = 17;
export const IR_VERSION = 8;

export interface SerializeOptions {
  /** Allow com.microsoft contrib ops (Gelu, FusedMatMul) in float32 lowerings. Default true. */
  contribOps?: boolean;
  /**
   * Lower `skipLayerNorm` to com.microsoft SkipLayerNormalization (with contribOps) rather than
   * Add(s) + LayerNormalization. Default false: ORT's CPU SkipLayerNormalization with the four
   * outputs training reads takes ~1.07 ms on deit-t's [2080, 192] where Add + LayerNormalization
   * take ~0.30 ms (bench/RESULTS.md "SkipLayerNormalization off by default"). A switch so the two
   * can be paired (bench engine --compare skipLayerNorm=true).
   */
  fusedSkipLayerNorm?: boolean;
  /**
   * Lower `geluGrad` (GELU's backward) in nine elementwise passes rather than ten: the same
   * bits; default true, a switch so the two can be paired (bench engine --compare geluGrad=false).
   */
  compactGeluGrad?: boolean;
  /**
   * Root-graph inputs to bake into the model as initializers, by input name (the weights of an
   * inference export). Such an input is no longer a graph input: ONNX (IR ≥ 4) lets an
   * initializer stand alone, and listing it as an input too would let callers override weights
   * and stop ORT from constant-folding them. dtype and shape come from the IR input.
   */
  initializers?: ReadonlyMap<string, Initializer>;
}

/**
 * An initializer's data: inline bytes, or a reference into an ONNX external-data file (needed
 * past protobuf's 2 GiB message limit). `location` is relative to the model file's directory.
 */
export type Initializer =
  | { data: TensorData }
  | { external: { location: string; offset: number; length: number } };

/** Serialise a root graph to ONNX model bytes. */
export function toOnnxModel(graph: Graph, opts: SerializeOptions = {}): Uint8Array {
  if (graph.parent) throw new Error("toOnnxModel: pass the root graph, not a loop body");
  const ctx = new GraphLowering(graph, new Map(), {
    contribOps: opts.contribOps ?? true,
    fusedSkipLayerNorm: opts.fusedSkipLayerNorm ?? false,
    compactGeluGrad: opts.compactGeluGrad ?? true,
  });
  const proto = ctx.lower();
  if (opts.initializers) bakeInitializers(graph, proto, opts.initializers);
  const opsets = [{ domain: "", version: OPSET }];
  if (ctx.usedMsDomain()) opsets.push({ domain: MS_DOMAIN, version: 1 });
  return encodeModel(proto, opsets, IR_VERSION);
}

class GraphLowering implements LowerContext {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly names: Map<Value, string>;
  private readonly constCache = new Map<string, string>();
  private readonly symbolSources = new Map<string, { value: Value; axis: number }>();
  private tmpCounter = 0;
  readonly contribOps: boolean;
  readonly fusedSkipLayerNorm: boolean;
  readonly compactGeluGrad: boolean;
  private msDomain = { used: false };

  constructor(
    private readonly graph: Graph,
    outerNames: Map<Value, string>,
    private readonly choices: { contribOps: boolean; fusedSkipLayerNorm: boolean; compactGeluGrad: boolean },
    msDomain?: { used: boolean },
  ) {
    this.contribOps = choices.contribOps;
    this.fusedSkipLayerNorm = choices.contribOps && choices.fusedSkipLayerNorm;
    this.compactGeluGrad = choices.compactGeluGrad;
    this.names = new Map(outerNames);
    if (msDomain) this.msDomain = msDomain;
  }

  usedMsDomain(): boolean {
    return this.msDomain.used;
  }

  lower(): GraphProto {
    const g = this.graph;
    const isRoot = !g.parent;
    for (const v of g.inputs) this.names.set(v, isRoot ? v.name! : `${v.name}#${v.id}`);
    for (const [outer, c] of g.captures) {
      const n = this.names.get(outer);
      if (!n) throw new Error(`capture of ${outer} has no name in the enclosing graph`);
      this.names.set(c, n);
    }
    for (const v of g.constants) this.names.set(v, `const#${v.id}`);
    // Graph outputs that a node computes take the output's name directly (no Identity needed).
    const direct = new Set<Value>();
    for (const o of g.outputs)
      if (o.value.kind === "node" && !direct.has(o.value)) {
        direct.add(o.value);
        this.names.set(o.value, isRoot ? o.name : `${o.name}#${o.value.id}`);
      }
    for (const n of g.nodes)
      for (const v of n.outputs) if (!this.names.has(v)) this.names.set(v, `${n.op}#${v.id}`);
    if (isRoot) {
      const inputNames = new Set(g.inputs.map((v) => v.name));
      for (const o of g.outputs)
        if (inputNames.has(o.name)) throw new Error(`graph output "${o.name}" has the same name as an input`);
    }
    this.collectSymbols();
    for (const v of g.constants)
      this.initializers.push(tensorProto(this.names.get(v)!, v.dtype, staticDims(v), v.data!));
    for (const n of g.nodes) this.lowerNode(n);
    const outputs = g.outputs.map((o) => {
      let name = this.names.get(o.value)!;
      const wanted = isRoot ? o.name : `${o.name}#${o.value.id}`;
      if (name !== wanted) {
        // inputs, constants, captures or a value output twice: route through an Identity
        const fresh = isRoot ? o.name : `${o.name}#out${this.tmpCounter++}`;
        this.emit("Identity", [name], [fresh]);
        name = fresh;
      }
      return valueInfo(name, o.value.dtype, o.value.shape);
    });
    return {
      name: g.name,
      node: this.nodes,
      initializer: this.initializers,
      input: g.inputs.map((v) => valueInfo(this.names.get(v)!, v.dtype, v.shape)),
      output: outputs,
    };
  }

  private lowerNode(n: Node): void {
    const lowering = LOWERINGS[n.op] as (
      ctx: LowerContext,
      node: Node,
      ins: string[],
      outs: string[],
    ) => void;
    const ins = n.inputs.map((v) => this.name(v));
    const outs = n.outputs.map((v) => this.name(v));
    try {
      lowering(this, n, ins, outs);
    } catch (e) {
      throw new Error(`lowering ${n.op} (${n.inputs.map(String).join(", ")}): ${(e as Error).message}`);
    }
  }

  name(v: Value): string {
    const n = this.names.get(v);
    if (n === undefined) throw new Error(`value ${v} has no ONNX name (not in this graph?)`);
    return n;
  }

  emit(
    opType: string,
    inputs: string[],
    outputs: string[] | number,
    attrs: AttributeProto[] = [],
    domain = "",
  ): string[] {
    const outs =
      typeof outputs === "number"
        ? Array.from({ length: outputs }, () => `${opType}#t${this.graph.nextId()}_${this.tmpCounter++}`)
        : outputs;
    if (domain === MS_DOMAIN) this.msDomain.used = true;
    this.nodes.push({ opType, input: inputs, output: outs, attribute: attrs, domain, name: outs[0] });
    return outs;
  }

  op(opType: string, inputs: string[], attrs: AttributeProto[] = [], domain = ""): string {
    return this.emit(opType, inputs, 1, attrs, domain)[0]!;
  }

  private addConst(key: string, make: (name: string) => TensorProto): string {
    let name = this.constCache.get(key);
    if (!name) {
      name = `const#${this.graph.nextId()}`;
      this.initializers.push(make(name));
      this.constCache.set(key, name);
    }
    return name;
  }

  constInt64(values: readonly number[], scalar = false): string {
    return this.addConst(`i64${scalar ? "s" : ""}:${values.join(",")}`, (name) =>
      tensorProto(
        name,
        "int64",
        scalar ? [] : [values.length],
        BigInt64Array.from(values, (x) => BigInt(x)),
      ),
    );
  }

  constScalar(x: number, dtype: DType): string {
    return this.addConst(`${dtype}:${x}`, (name) => {
      const data = allocData(dtype, 1) as TensorData;
      if (data instanceof BigInt64Array) data[0] = BigInt(x);
      else data[0] = x;
      return tensorProto(name, dtype, [], data);
    });
  }

  reshapeTarget(shape: Shape): string {
    const symbolic = shape.filter((d) => !isStaticDim(d)).length;
    if (symbolic <= 1) return this.constInt64(shape.map((d) => (isStaticDim(d) ? d : -1)));
    return this.shapeTensor(shape);
  }

  shapeTensor(shape: Shape): string {
    if (shape.every(isStaticDim)) return this.constInt64(shape as number[]);
    const key = `shape:${formatShape(shape)}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const parts = shape.map((d) => (isStaticDim(d) ? this.constInt64([d]) : this.symbolicDim(d)));
    const out = this.op("Concat", parts, [attr.int("axis", 0)]);
    this.constCache.set(key, out);
    return out;
  }

  /** A [1] int64 tensor holding a symbolic dim's run-time value. */
  private symbolicDim(d: Dim): string {
    const key = `dim:${d}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const { coef, syms } = parseDim(d);
    let acc: string | undefined;
    for (const s of syms) {
      const src = this.symbolSources.get(s);
      if (!src)
        throw new Error(`symbolic dim "${s}" is not carried by any input of graph "${this.graph.name}"`);
      const piece = this.op(
        "Shape",
        [this.name(src.value)],
        [attr.int("start", src.axis), attr.int("end", src.axis + 1)],
      );
      acc = acc ? this.op("Mul", [acc, piece]) : piece;
    }
    if (coef !== 1) acc = this.op("Mul", [acc!, this.constInt64([coef])]);
    this.constCache.set(key, acc!);
    return acc!;
  }

  private collectSymbols(): void {
    for (const v of [...this.graph.inputs, ...this.graph.captures.values()])
      v.shape.forEach((d, axis) => {
        if (typeof d === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(d) && !this.symbolSources.has(d))
          this.symbolSources.set(d, { value: v, axis });
      });
  }

  subgraph(g: Graph): GraphProto {
    return new GraphLowering(g, this.names, this.choices, this.msDomain).lower();
  }
}

/** Moves the named root inputs of `proto` into its initializers (see SerializeOptions). */
function bakeInitializers(graph: Graph, proto: GraphProto, inits: ReadonlyMap<string, Initializer>): void {
  const byName = new Map(graph.inputs.map((v) => [v.name!, v]));
  for (const [name, init] of inits) {
    const v = byName.get(name);
    if (!v)
      throw new Error(
        `initializer "${name}" names no input of graph "${graph.name}" (inputs: ${[...byName.keys()].slice(0, 8).join(", ")}${byName.size > 8 ? ", …" : ""})`,
      );
    const dims = staticDims(v);
    const bytes = dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[v.dtype];
    if ("data" in init) {
      if (init.data.byteLength !== bytes)
        throw new Error(
          `initializer "${name}": ${init.data.byteLength} bytes of data, but ${v.dtype}${formatShape(dims)} needs ${bytes}`,
        );
      proto.initializer!.push(tensorProto(name, v.dtype, dims, init.data));
    } else {
      const { location, offset, length } = init.external;
      if (length !== bytes)
        throw new Error(
          `initializer "${name}": external length ${length} bytes, but ${v.dtype}${formatShape(dims)} needs ${bytes}`,
        );
      if (!Number.isSafeInteger(offset) || offset < 0)
        throw new Error(
          `initializer "${name}": external offset must be a non-negative integer, got ${offset}`,
        );
      proto.initializer!.push({
        name,
        dataType: ONNX_DTYPE[v.dtype],
        dims,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: location },
          { key: "offset", value: String(offset) },
          { key: "length", value: String(length) },
        ],
      });
    }
  }
  proto.input = proto.input!.filter((i) => !inits.has(i.name!));
}

const DTYPE_BYTES: Record<DType, number> = { float32: 4, float64: 8, int64: 8, bool: 1 };

function staticDims(v: Value): number[] {
  if (!v.shape.every(isStaticDim)) throw new Error(`constant ${v} must have a static shape`);
  return v.shape as number[];
}
