/**
 * The ViT / DeiT family from one config, built on the engine's graph builder.
 *
 * Parameter names and shapes are timm's `VisionTransformer` (class token, pre-norm blocks), so
 * weights move to and from timm through safetensors unchanged:
 *
 *   patch_embed.proj.weight [D,C,p,p]   patch_embed.proj.bias [D]   cls_token [1,1,D]
 *   pos_embed [1,T,D]                   blocks.i.norm1.{weight,bias}
 *   blocks.i.attn.qkv.{weight [3D,D], bias [3D]}   blocks.i.attn.proj.{weight [D,D], bias}
 *   blocks.i.norm2.{weight,bias}        blocks.i.mlp.fc1.{weight [rD,D], bias}
 *   blocks.i.mlp.fc2.{weight [D,rD], bias}          norm.{weight,bias}   head.{weight [K,D], bias}
 *
 * Layout choice for speed: inside a block activations stay 2-D, [B·T, D], so every linear layer
 * — forward and both gradients — is one GEMM over the flattened batch; only attention reshapes
 * to [B, heads, T, head_dim].
 *
 * The pieces (embed, block, head) are exported separately: the incubation hybrids compose them
 * from target and meta parameters under different name prefixes.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";
import { type Dim, isStaticDim } from "../ir/shape.ts";
import type { ParamSpec } from "../train/params.ts";

export interface VitConfig {
  imageSize: number;
  channels: number;
  patchSize: number;
  width: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  qkvBias: boolean;
  layerNormEps: number;
  numClasses: number;
  /** Stochastic depth: rate of the last block; block i uses rate·i/(depth−1) (timm's linspace). */
  dropPathRate: number;
}

export const VIT_DEFAULTS = {
  channels: 3,
  mlpRatio: 4,
  qkvBias: true,
  layerNormEps: 1e-6,
  numClasses: 1000,
  dropPathRate: 0,
} as const;

type PresetSize = Pick<VitConfig, "width" | "depth" | "heads">;
const SIZES: Record<string, PresetSize> = {
  tiny: { width: 192, depth: 12, heads: 3 },
  small: { width: 384, depth: 12, heads: 6 },
  base: { width: 768, depth: 12, heads: 12 },
  large: { width: 1024, depth: 24, heads: 16 },
  huge: { width: 1280, depth: 32, heads: 16 },
};

/**
 * A named preset: `vit-{tiny,small,base,large,huge}-{16,14}` at 224 px (ImageNet), or the
 * CIFAR-style `deit-t-N` (32 px, patch 4, width 192, 3 heads, depth N, 10 classes).
 */
export function vitPreset(name: string, overrides: Partial<VitConfig> = {}): VitConfig {
  const vit = /^vit-(tiny|small|base|large|huge)-(16|14)$/.exec(name);
  if (vit) {
    return validateVitConfig({
      ...VIT_DEFAULTS,
      ...SIZES[vit[1]!]!,
      imageSize: 224,
      patchSize: Number(vit[2]),
      ...overrides,
    });
  }
  const deit = /^deit-t-(\d+)$/.exec(name);
  if (deit) {
    return validateVitConfig({
      ...VIT_DEFAULTS,
      imageSize: 32,
      patchSize: 4,
      width: 192,
      depth: Number(deit[1]),
      heads: 3,
      numClasses: 10,
      ...overrides,
    });
  }
  throw new Error(
    `unknown model preset "${name}": use vit-{tiny,small,base,large,huge}-{16,14} or deit-t-<depth> (e.g. deit-t-12)`,
  );
}

/** Throws with the field name and the fix when a config cannot describe a ViT. */
export function validateVitConfig(cfg: VitConfig): VitConfig {
  const positive = ["imageSize", "channels", "patchSize", "width", "depth", "heads", "numClasses"] as const;
  for (const key of positive) {
    if (!Number.isInteger(cfg[key]) || cfg[key] <= 0)
      throw new Error(`${key} must be a positive integer, got ${cfg[key]}`);
  }
  if (cfg.width % cfg.heads !== 0) {
    throw new Error(`width (${cfg.width}) must be divisible by heads (${cfg.heads})`);
  }
  if (cfg.imageSize % cfg.patchSize !== 0) {
    throw new Error(`imageSize (${cfg.imageSize}) must be divisible by patchSize (${cfg.patchSize})`);
  }
  if (!(cfg.mlpRatio > 0) || !Number.isInteger(cfg.width * cfg.mlpRatio)) {
    throw new Error(`mlpRatio (${cfg.mlpRatio}) must be positive and make width·mlpRatio a whole number`);
  }
  if (!(cfg.dropPathRate >= 0 && cfg.dropPathRate < 1)) {
    throw new Error(`dropPathRate must be in [0, 1), got ${cfg.dropPathRate}`);
  }
  return cfg;
}

export const numPatches = (cfg: VitConfig) => (cfg.imageSize / cfg.patchSize) ** 2;
export const numTokens = (cfg: VitConfig) => numPatches(cfg) + 1;
export const mlpHidden = (cfg: VitConfig) => cfg.width * cfg.mlpRatio;

// ---- parameters ----------------------------------------------------------------------------

const TRUNC = { kind: "truncNormal", std: 0.02 } as const;
const ZEROS = { kind: "zeros" } as const;
const ONES = { kind: "ones" } as const;

/**
 * Embedding parameters (module 0 of a split). cls/pos embeddings take no weight decay.
 *
 * Initialisation as timm's VisionTransformer (the version the official Deep Incubation code
 * ships) leaves it: cls_token and pos_embed trunc_normal(.02); its init touches only Linear and
 * LayerNorm modules, so the patch Conv2d keeps PyTorch's default — kaiming_uniform_(a=√5) on the
 * weight and U(±1/√fan_in) on the bias, both U(±1/√fan_in) with fan_in = C·p·p.
 */
export function embedParamSpecs(cfg: VitConfig, prefix = ""): ParamSpec[] {
  const { width: d, channels: c, patchSize: p } = cfg;
  const conv = { kind: "uniform", bound: 1 / Math.sqrt(c * p * p) } as const;
  return [
    { name: `${prefix}patch_embed.proj.weight`, shape: [d, c, p, p], init: conv },
    { name: `${prefix}patch_embed.proj.bias`, shape: [d], init: conv },
    { name: `${prefix}cls_token`, shape: [1, 1, d], init: TRUNC, decay: false },
    { name: `${prefix}pos_embed`, shape: [1, numTokens(cfg), d], init: TRUNC, decay: false },
  ];
}

/** One transformer block's parameters, named `${prefix}blocks.${index}.…`. */
export function blockParamSpecs(cfg: VitConfig, index: number, prefix = ""): ParamSpec[] {
  const d = cfg.width;
  const h = mlpHidden(cfg);
  const b = `${prefix}blocks.${index}.`;
  const specs: ParamSpec[] = [
    { name: `${b}norm1.weight`, shape: [d], init: ONES },
    { name: `${b}norm1.bias`, shape: [d], init: ZEROS },
    { name: `${b}attn.qkv.weight`, shape: [3 * d, d], init: TRUNC },
  ];
  if (cfg.qkvBias) specs.push({ name: `${b}attn.qkv.bias`, shape: [3 * d], init: ZEROS });
  specs.push(
    { name: `${b}attn.proj.weight`, shape: [d, d], init: TRUNC },
    { name: `${b}attn.proj.bias`, shape: [d], init: ZEROS },
    { name: `${b}norm2.weight`, shape: [d], init: ONES },
    { name: `${b}norm2.bias`, shape: [d], init: ZEROS },
    { name: `${b}mlp.fc1.weight`, shape: [h, d], init: TRUNC },
    { name: `${b}mlp.fc1.bias`, shape: [h], init: ZEROS },
    { name: `${b}mlp.fc2.weight`, shape: [d, h], init: TRUNC },
    { name: `${b}mlp.fc2.bias`, shape: [d], init: ZEROS },
  );
  return specs;
}

/** Final norm and classifier (the last module of a split). */
export function headParamSpecs(cfg: VitConfig, prefix = ""): ParamSpec[] {
  return [
    { name: `${prefix}norm.weight`, shape: [cfg.width], init: ONES },
    { name: `${prefix}norm.bias`, shape: [cfg.width], init: ZEROS },
    { name: `${prefix}head.weight`, shape: [cfg.numClasses, cfg.width], init: TRUNC },
    { name: `${prefix}head.bias`, shape: [cfg.numClasses], init: ZEROS },
  ];
}

export function vitParamSpecs(cfg: VitConfig, prefix = ""): ParamSpec[] {
  return [
    ...embedParamSpecs(cfg, prefix),
    ...Array.from({ length: cfg.depth }, (_, i) => blockParamSpecs(cfg, i, prefix)).flat(),
    ...headParamSpecs(cfg, prefix),
  ];
}

export function countParams(specs: readonly ParamSpec[]): number {
  return specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/** timm's stochastic-depth schedule: linspace(0, rate, depth). */
export function dropPathRates(rate: number, depth: number): number[] {
  if (depth === 1) return [0];
  return Array.from({ length: depth }, (_, i) => (rate * i) / (depth - 1));
}

// ---- forward pieces ------------------------------------------------------------------------

/** Reads a parameter by its full name (a slice of the flat buffers in a train graph). */
export type ParamReader = (name: string) => Value;

/** Tokens between blocks: [B·T, D] plus the batch and token counts to undo the flattening. */
export interface Tokens {
  x: Value;
  /** Static, or symbolic (e.g. "batch") in inference graphs: reshapes use -1 for it. */
  batch: Dim;
  tokens: number;
  /**
   * `x` already normalised by the LayerNorm `by` (e.g. "blocks.3.norm1"): the previous block
   * computed its second residual add and this norm as one skipLayerNorm (see BlockOptions.nextNorm).
   */
  normed?: { by: string; y: Normed };
}

/** images [B,C,H,W] → tokens [B·T, D]: patchify (reshape+matmul = Conv2d k=s=p), cls, pos. */
export function embed(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  images: Value,
  prefix = "",
): Tokens {
  const batch = images.shape[0]!;
  const { channels: c, patchSize: p, width: d } = cfg;
  const g = cfg.imageSize / p;
  const n = g * g;
  // [B,C,g,p,g,p] → [B,g,g,C,p,p] → [B·N, C·p·p]: each row is one patch in (c, ph, pw) order,
  // the order of Conv2d's weight [D, C, p, p] flattened.
  const patches = b.reshape(b.transpose(b.reshape(images, [-1, c, g, p, g, p]), [0, 2, 4, 1, 3, 5]), [
    -1,
    c * p * p,
  ]);
  const w = b.reshape(param(`${prefix}patch_embed.proj.weight`), [d, c * p * p]);
  const projected = b.reshape(b.gemm(patches, w, param(`${prefix}patch_embed.proj.bias`), { transB: true }), [
    -1,
    n,
    d,
  ]);
  const cls = b.expand(param(`${prefix}cls_token`), [batch, 1, d]);
  const tokens = b.add(b.concat([cls, projected], 1), param(`${prefix}pos_embed`));
  return { x: b.reshape(tokens, [-1, d]), batch, tokens: n + 1 };
}

function linear(b: GraphBuilder, x: Value, param: ParamReader, name: string, bias = true): Value {
  return b.gemm(x, param(`${name}.weight`), bias ? param(`${name}.bias`) : undefined, { transB: true });
}

/**
 * Rows out of a LayerNorm, as a linear layer reads them. With `affine` set, the rows are the
 * normalised x̂ and that norm's scale and shift (parameters `${affine}.weight`, `.bias`) are still
 * to be applied — the reading layer folds them into its own weights (`normedLinearWeights`).
 */
export interface Normed {
  rows: Value;
  affine?: string;
}

/**
 * The weight [out, in] and bias [out] a linear layer applies to `normed` rows. With a pending
 * affine: LN(x)·Wᵀ + b = x̂·(W⊙scale)ᵀ + (b + W·shift) — the same function, computed on
 * [out, in]-sized tensors instead of [rows, in] ones. Why: x̂ is then what the norm's backward
 * reads (no recomputing it), the gradient arriving at x̂ is the layer's input gradient as it
 * comes out of the GEMM (no ⊙scale pass), and the scale's and shift's gradients come from the
 * small weight-side products instead of two column sums over every row — five fewer passes over
 * the activations per norm (bench/RESULTS.md, "LayerNorm affine folded into the next layer").
 */
function normedLinearWeights(
  b: GraphBuilder,
  normed: Normed,
  param: ParamReader,
  name: string,
  bias = true,
): { weight: Value; bias: Value | undefined } {
  const weight = param(`${name}.weight`);
  const ownBias = bias ? param(`${name}.bias`) : undefined;
  if (!normed.affine) return { weight, bias: ownBias };
  const d = normed.rows.shape.at(-1)!;
  const scale = b.reshape(param(`${normed.affine}.weight`), [1, d]);
  const shift = b.reshape(param(`${normed.affine}.bias`), [1, d]);
  const shifted = b.reshape(b.gemm(shift, weight, undefined, { transB: true }), [weight.shape[0]!]); // W·shift
  return { weight: b.mul(weight, scale), bias: ownBias ? b.add(ownBias, shifted) : shifted };
}

/**
 * When a LayerNorm's affine goes into the linear layer reading it: "always", "never", or "auto" —
 * where it saves passes. Folding saves five passes over the norm's [rows, in] activations in the
 * backward and costs about eight over the reader's [out, in] weight (W⊙scale, W·shift forward;
 * the two gradients through them backward), so it pays when 5·rows > 8·out: deit-t at batch 32
 * (2,080 rows, out 576/768) folds; ViT-B/16 at batch 8 (1,576 rows, out 2,304/3,072) and every
 * class-token-only norm (batch rows) do not. Rows not known until run time (inference): no fold.
 */
export type NormFold = "auto" | "always" | "never";

function foldsNorm(mode: NormFold, rows: Dim, readerOut: number): boolean {
  if (mode !== "auto") return mode === "always";
  return isStaticDim(rows) && 5 * rows > 8 * readerOut;
}

/** A linear layer reading LayerNorm rows (see Normed). */
function normedLinear(b: GraphBuilder, normed: Normed, param: ParamReader, name: string, bias = true): Value {
  const w = normedLinearWeights(b, normed, param, name, bias);
  return b.gemm(normed.rows, w.weight, w.bias, { transB: true });
}

/**
 * Scale a residual branch per sample by a drop-path mask [B] (0 or 1/keep), fed as an input so
 * the random draw comes from the run's seeded generator.
 */
function dropPath(b: GraphBuilder, branch: Value, mask: Value | undefined, t: Tokens, d: number): Value {
  if (!mask) return branch;
  const perSample = b.reshape(branch, [-1, t.tokens * d]);
  return b.reshape(b.mul(perSample, b.reshape(mask, [-1, 1])), [-1, d]);
}

/** A block's drop-path masks [B], one per residual branch (timm draws each branch apart). */
export interface BlockDropMasks {
  attn: Value;
  mlp: Value;
}

export interface BlockOptions {
  /** Drop-path masks for this block (training only). */
  dropMask?: BlockDropMasks;
  /**
   * Compute only the class token's output (tokens → [B, D], `tokens: 1`). For the last block
   * before the head, which reads nothing else: keys and values still come from every token, but
   * the query, attention output, projection and MLP run on one row per image instead of T —
   * the same function and gradients for about 2/3 less of that block's work.
   */
  clsOnly?: boolean;
  /**
   * The next block's first LayerNorm (its parameter prefix and epsilon). Given — and without a
   * drop-path mask — this block's MLP bias add, its second residual add and that norm are one
   * skipLayerNorm op, and the tokens it returns carry the normalised rows (`Tokens.normed`).
   */
  nextNorm?: { name: string; epsilon: number; readerOut: number };
  /** Fold each LayerNorm's affine into the linear layer that reads it (ForwardOptions.foldNormAffine). */
  foldNormAffine?: NormFold;
  /** Attention one head at a time, without head transposes (ForwardOptions.attentionPerHead). */
  attentionPerHead?: boolean;
}

/** One pre-norm transformer block on tokens [B·T, D]; `name` is e.g. "blocks.3" or "meta.blocks.1". */
/** Sizes and the LayerNorm reader that both block variants share. */
function blockParts(b: GraphBuilder, cfg: VitConfig, param: ParamReader, name: string, fold: NormFold) {
  const d = cfg.width;
  return {
    d,
    heads: cfg.heads,
    hd: d / cfg.heads,
    /** norm `which` of x, read by a linear layer with `readerOut` outputs */
    ln: (x: Value, which: string, readerOut: number): Normed =>
      layerNormRows(
        b,
        x,
        param,
        `${name}.${which}`,
        cfg.layerNormEps,
        foldsNorm(fold, x.shape[0]!, readerOut),
      ),
    qkvOut: 3 * d,
    /** the MLP's hidden width (fc1's outputs) */
    hidden: param(`${name}.mlp.fc1.weight`).shape[0] as number,
  };
}

/** LayerNorm `norm` (its parameter prefix) of x, with the affine applied or left to the reader. */
function layerNormRows(
  b: GraphBuilder,
  x: Value,
  param: ParamReader,
  norm: string,
  epsilon: number,
  fold: boolean,
): Normed {
  if (fold) return { rows: b.layerNorm(x, undefined, undefined, { epsilon }), affine: norm };
  return { rows: b.layerNorm(x, param(`${norm}.weight`), param(`${norm}.bias`), { epsilon }) };
}

/** The affine a skipLayerNorm applies itself: none when folded into the reader. */
function skipAffine(param: ParamReader, norm: string, fold: boolean) {
  return fold ? undefined : { scale: param(`${norm}.weight`), shift: param(`${norm}.bias`) };
}

export function block(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  t: Tokens,
  name: string,
  opts: BlockOptions = {},
): Tokens {
  const fold = opts.foldNormAffine ?? "auto";
  const { d, heads, hd, ln, qkvOut } = blockParts(b, cfg, param, name, fold);
  const { tokens } = t;

  if (opts.clsOnly) return clsBlock(b, cfg, param, t, name, opts);

  // Attention.
  const qkv = normedLinear(b, norm1(t, name, ln, qkvOut), param, `${name}.attn.qkv`, cfg.qkvBias); // [B·T, 3D]
  const mixed = opts.attentionPerHead
    ? attentionPerHead(b, qkv, tokens, heads, hd)
    : attentionAllHeads(b, qkv, tokens, heads, hd);
  const { x1, normed } = residualNorm(b, cfg, param, t, mixed, name, opts.dropMask?.attn, fold);

  // MLP.
  const hidden = b.gelu(normedLinear(b, normed, param, `${name}.mlp.fc1`));
  const next = opts.nextNorm;
  if (next && !opts.dropMask) {
    const mlpOut = linear(b, hidden, param, `${name}.mlp.fc2`, false);
    const folds = foldsNorm(fold, x1.shape[0]!, next.readerOut);
    const { y, sum } = b.skipLayerNorm(mlpOut, x1, skipAffine(param, next.name, folds), {
      bias: param(`${name}.mlp.fc2.bias`),
      epsilon: next.epsilon,
    });
    const rows: Normed = folds ? { rows: y, affine: next.name } : { rows: y };
    return { batch: t.batch, tokens: t.tokens, x: sum, normed: { by: next.name, y: rows } };
  }
  const mlpOut = linear(b, hidden, param, `${name}.mlp.fc2`);
  return {
    batch: t.batch,
    tokens: t.tokens,
    x: b.add(x1, dropPath(b, mlpOut, opts.dropMask?.mlp, { ...t, x: x1 }, d)),
  };
}

/**
 * Multi-head attention on qkv [B·T, 3D] (columns: q, k, v, each head by head) → [B·T, D]: all heads
 * as one batch [B, H, T, hd], moved there by a transpose (and back by another).
 */
function attentionAllHeads(b: GraphBuilder, qkv: Value, tokens: number, heads: number, hd: number): Value {
  const split = b.transpose(b.reshape(qkv, [-1, tokens, 3, heads, hd]), [2, 0, 3, 1, 4]); // [3,B,H,T,hd]
  const [q3, k3, v3] = b.split(split, 0, [1, 1, 1]) as [Value, Value, Value];
  const q = b.mul(b.reshape(q3, [-1, heads, tokens, hd]), hd ** -0.5);
  const k = b.reshape(k3, [-1, heads, tokens, hd]);
  const v = b.reshape(v3, [-1, heads, tokens, hd]);
  const attn = b.softmax(b.matmul(q, k, { transB: true }), -1); // [B,H,T,T]
  return b.reshape(b.transpose(b.matmul(attn, v), [0, 2, 1, 3]), [-1, heads * hd]);
}

/**
 * The same attention one head at a time: one Split cuts qkv into 3H pieces [B, T, hd] and one
 * Concat joins the heads' outputs back into rows — no transposes, whose ORT CPU kernel runs on
 * one thread (bench/RESULTS.md); in exchange H times as many (smaller) attention nodes.
 */
function attentionPerHead(b: GraphBuilder, qkv: Value, tokens: number, heads: number, hd: number): Value {
  const pieces = b.split(b.reshape(qkv, [-1, tokens, 3 * heads, hd]), 2, Array(3 * heads).fill(1));
  const piece = (i: number) => b.reshape(pieces[i]!, [-1, tokens, hd]);
  const outs = Array.from({ length: heads }, (_, h) => {
    const q = b.mul(piece(h), hd ** -0.5);
    const attn = b.softmax(b.matmul(q, piece(heads + h), { transB: true }), -1); // [B,T,T]
    return b.matmul(attn, piece(2 * heads + h)); // [B,T,hd]
  });
  return b.reshape(b.concat(outs, 2), [-1, heads * hd]);
}

/** A block's norm1 of the tokens: the rows the previous block already normalised, if it did. */
function norm1(
  t: Tokens,
  name: string,
  ln: (x: Value, which: string, readerOut: number) => Normed,
  readerOut: number,
): Normed {
  return t.normed?.by === `${name}.norm1` ? t.normed.y : ln(t.x, "norm1", readerOut);
}

/**
 * x1 = x + proj(mixed) and norm2(x1). Without drop-path the projection's bias add, the residual
 * add and the LayerNorm are one skipLayerNorm op (one IR op; see its lowering); with a drop-path
 * mask the branch is scaled per sample first, so they stay separate.
 */
function residualNorm(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  t: Tokens,
  mixed: Value,
  name: string,
  dropMask: Value | undefined,
  fold: NormFold,
): { x1: Value; normed: Normed } {
  const { d, ln, hidden } = blockParts(b, cfg, param, name, fold);
  if (dropMask) {
    const attnOut = linear(b, mixed, param, `${name}.attn.proj`);
    const x1 = b.add(t.x, dropPath(b, attnOut, dropMask, t, d));
    return { x1, normed: ln(x1, "norm2", hidden) };
  }
  const projected = linear(b, mixed, param, `${name}.attn.proj`, false);
  const norm2 = `${name}.norm2`;
  const folds = foldsNorm(fold, t.x.shape[0]!, hidden);
  const { y, sum } = b.skipLayerNorm(projected, t.x, skipAffine(param, norm2, folds), {
    bias: param(`${name}.attn.proj.bias`),
    epsilon: cfg.layerNormEps,
  });
  return { x1: sum, normed: folds ? { rows: y, affine: norm2 } : { rows: y } };
}

/** Rows of the class token: tokens [B·T, D] → [B, D]. */
function classRows(b: GraphBuilder, x: Value, t: Tokens, d: number): Value {
  if (t.tokens === 1) return x;
  return b.reshape(b.slice(b.reshape(x, [-1, t.tokens, d]), 1, 0, 1), [-1, d]);
}

/** `block` computing only the class token's output (see BlockOptions.clsOnly). */
function clsBlock(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  t: Tokens,
  name: string,
  opts: BlockOptions,
): Tokens {
  const { d, heads, hd, ln, qkvOut, hidden } = blockParts(b, cfg, param, name, opts.foldNormAffine ?? "auto");
  const { batch, tokens } = t;
  const xn = norm1(t, name, ln, qkvOut); // [B·T, D]
  // qkv.weight rows are [q; k; v]: keys and values for every token, the query for the class token.
  const qkvW = normedLinearWeights(b, xn, param, `${name}.attn.qkv`, cfg.qkvBias);
  const [wq, wkv] = b.split(qkvW.weight, 0, [d, 2 * d]) as [Value, Value];
  const [bq, bkv] = qkvW.bias
    ? (b.split(qkvW.bias, 0, [d, 2 * d]) as [Value, Value])
    : [undefined, undefined];
  const kv = b.gemm(xn.rows, wkv, bkv, { transB: true }); // [B·T, 2D]
  const kvHeads = b.transpose(b.reshape(kv, [-1, tokens, 2, heads, hd]), [2, 0, 3, 1, 4]); // [2,B,H,T,hd]
  const [k2, v2] = b.split(kvHeads, 0, [1, 1]) as [Value, Value];
  const k = b.reshape(k2, [-1, heads, tokens, hd]);
  const v = b.reshape(v2, [-1, heads, tokens, hd]);
  const q1 = b.gemm(classRows(b, xn.rows, t, d), wq, bq, { transB: true }); // [B, D]
  const q = b.mul(b.reshape(q1, [-1, heads, 1, hd]), hd ** -0.5);
  const attn = b.softmax(b.matmul(q, k, { transB: true }), -1); // [B,H,1,T]
  const mixed = b.reshape(b.matmul(attn, v), [-1, d]); // [B,H,1,hd] is [B,1,H,hd] in memory
  const one: Tokens = { x: mixed, batch, tokens: 1 };
  const attnOut = linear(b, mixed, param, `${name}.attn.proj`);
  const x1 = b.add(classRows(b, t.x, t, d), dropPath(b, attnOut, opts.dropMask?.attn, one, d));
  const act = b.gelu(normedLinear(b, ln(x1, "norm2", hidden), param, `${name}.mlp.fc1`));
  const mlpOut = linear(b, act, param, `${name}.mlp.fc2`);
  return { x: b.add(x1, dropPath(b, mlpOut, opts.dropMask?.mlp, one, d)), batch, tokens: 1 };
}

/** Final norm on the class token and the classifier: tokens → logits [B, classes]. */
export function head(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  t: Tokens,
  prefix = "",
  foldNormAffine: NormFold = "auto",
): Value {
  // LayerNorm is per token, so norm(x)[:, 0] = norm(x[:, 0]): normalise only the class token.
  const cls = classRows(b, t.x, t, cfg.width);
  const fold = foldsNorm(foldNormAffine, cls.shape[0]!, param(`${prefix}head.weight`).shape[0] as number);
  const normed = layerNormRows(b, cls, param, `${prefix}norm`, cfg.layerNormEps, fold);
  return normedLinear(b, normed, param, `${prefix}head`);
}

/**
 * Which parameters each stage of a forward pass reads: the embedding under `embedPrefix`,
 * blocks by full name (e.g. "blocks.3", "meta.blocks.1"), the head under `headPrefix`. A plain
 * ViT reads its own; an incubation hybrid mixes target and meta-model stages.
 */
export interface ForwardPlan {
  embedPrefix: string;
  blocks: readonly string[];
  headPrefix: string;
  /** Each stage's own config, and width adapters between them (absent: all use the model's config). */
  widths?: PlanWidths;
}

/**
 * A forward pass whose stages have different widths — incubation with a meta model of another
 * width: each stage is built with its own config, and a width adapter (a linear map on every
 * token, `${name}.weight` [out, in] and `${name}.bias`) joins stages whose widths differ.
 */
export interface PlanWidths {
  embed: VitConfig;
  /** One config per entry of `ForwardPlan.blocks`. */
  blocks: readonly VitConfig[];
  head: VitConfig;
  /** Applied to the tokens before block `before` (`before = blocks.length`: before the head). */
  adapters: readonly { before: number; name: string }[];
}

export function vitPlan(cfg: VitConfig, prefix = ""): ForwardPlan {
  return {
    embedPrefix: prefix,
    blocks: Array.from({ length: cfg.depth }, (_, i) => `${prefix}blocks.${i}`),
    headPrefix: prefix,
  };
}

export interface ForwardOptions {
  /**
   * Each block's MLP bias add, second residual add and the next block's norm1 as one
   * skipLayerNorm (default false: measured with SkipLayerNormalization kernels, slower than the
   * Add + Add + LayerNormalization they replace, and with skipLayerNorm now lowered as that pair
   * it saves nothing; recomputation always keeps them apart,
   * since its segments must not read the next block's normalised rows).
   */
  fuseResidualNorm?: boolean;
  /**
   * Fold LayerNorms' scale and shift into the linear layer that reads their rows (see
   * normedLinearWeights and NormFold; default "auto": where it saves passes). The same function.
   */
  foldNormAffine?: NormFold;
  /** Attention one head at a time (see attentionPerHead; default false). The same function. */
  attentionPerHead?: boolean;
}

/** images → logits along `plan`; `dropMasks[i]` are the i-th block's masks (training only). */
export function forwardPlan(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  images: Value,
  plan: ForwardPlan,
  dropMasks?: readonly (BlockDropMasks | undefined)[],
  opts: ForwardOptions = {},
): Value {
  const widths = plan.widths;
  const fuse = opts.fuseResidualNorm ?? false;
  const foldNormAffine = opts.foldNormAffine ?? "auto";
  const adapt = (t: Tokens, before: number): Tokens => {
    for (const adapter of widths?.adapters ?? []) {
      if (adapter.before === before)
        t = { batch: t.batch, tokens: t.tokens, x: linear(b, t.x, param, adapter.name) };
    }
    return t;
  };
  let t = embed(b, widths?.embed ?? cfg, param, images, plan.embedPrefix);
  plan.blocks.forEach((name, i) => {
    t = adapt(t, i);
    const dropMask = dropMasks?.[i];
    // The head reads only the class token, so the last block computes only that row.
    const clsOnly = i === plan.blocks.length - 1;
    const blockCfg = widths?.blocks[i] ?? cfg;
    // The next block's norm1 joins this block's second residual add, unless an adapter sits
    // between them (or the last block, which the head's own norm follows).
    const nextName = plan.blocks[i + 1];
    const adapted = widths?.adapters.some((a) => a.before === i + 1) ?? false;
    const nextNorm =
      fuse && nextName !== undefined && !adapted
        ? {
            name: `${nextName}.norm1`,
            epsilon: (widths?.blocks[i + 1] ?? cfg).layerNormEps,
            readerOut: 3 * (widths?.blocks[i + 1] ?? cfg).width,
          }
        : undefined;
    // Each block is a recomputable segment (activation recomputation, autodiff/recompute.ts).
    const input = t;
    t = b.segment(input.x, () =>
      block(b, blockCfg, param, input, name, {
        clsOnly,
        foldNormAffine,
        attentionPerHead: opts.attentionPerHead ?? false,
        ...(dropMask ? { dropMask } : {}),
        ...(nextNorm ? { nextNorm } : {}),
      }),
    );
  });
  t = adapt(t, plan.blocks.length);
  return head(b, widths?.head ?? cfg, param, t, plan.headPrefix, foldNormAffine);
}

/** The whole model: images → logits. `dropMasks[i]` are block i's masks (training only). */
export function vitForward(
  b: GraphBuilder,
  cfg: VitConfig,
  param: ParamReader,
  images: Value,
  dropMasks?: readonly (BlockDropMasks | undefined)[],
  prefix = "",
  opts: ForwardOptions = {},
): Value {
  return forwardPlan(b, cfg, param, images, vitPlan(cfg, prefix), dropMasks, opts);
}
