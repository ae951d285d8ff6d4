/**
 * Training checkpoints and weight files, both safetensors.
 *
 * A checkpoint is everything a job needs to continue bit for bit after a crash or a retry:
 *
 *   tensors   every parameter under its timm name ("blocks.0.attn.qkv.weight", …), frozen ones
 *             included, and each optimizer-state slot of each trainable parameter as
 *             "optimizer.<slot>.<name>" (e.g. "optimizer.exp_avg.head.weight"); all F32.
 *   metadata  "format": "pt" (Hugging Face / timm loaders check this key), and under
 *             "incubator.*": format + version, the number of completed optimizer steps (exact,
 *             as text), the run's RNG state, the optimizer kind and hyper-parameters, and the
 *             caller's extras (JSON, one key each, e.g. the data loader's state).
 *
 * Nothing time- or host-dependent goes in, so the same training state always gives the same
 * bytes (and the same sha256 in the content-addressed artifact store).
 *
 * A weights file (`saveWeights`) holds the parameters alone under their timm names — what timm,
 * Hugging Face and other tools load with `strict=True`; `loadWeights` reads such files from any
 * source (F16/BF16/F64 are converted to F32) and checks them against the expected layout.
 *
 * Files are written atomically (temp file, fsync, rename) and read tensor by tensor, so neither
 * side needs one buffer the size of the file (Node cannot read a > 2 GiB file into one).
 */
import { existsSync } from "node:fs";
import type { OptimizerConfig } from "../optim/types.ts";
import { stateSlots } from "../optim/types.ts";
import { Rng, type RngState } from "../rng.ts";
import { STEP_KEY, type Trainer } from "../train/trainer.ts";
import { openSafetensors, type Tensor, toFloat32, writeSafetensors } from "./safetensors.ts";
import { decodeRngState, encodeRngState } from "./training-state.ts";

export class CheckpointError extends Error {
  override readonly name = "CheckpointError";
}

export const CHECKPOINT_FORMAT = "incubator.checkpoint";
export const WEIGHTS_FORMAT = "incubator.weights";
/** Bump when the layout changes; loaders accept every version up to this one. */
export const CHECKPOINT_VERSION = 1;

/** Metadata keys (safetensors `__metadata__` is a flat string → string map). */
const MD = {
  format: "incubator.format",
  version: "incubator.version",
  step: "incubator.step",
  rng: "incubator.rng",
  optimizer: "incubator.optimizer",
  extraPrefix: "incubator.extra.",
} as const;

const OPTIMIZER_PREFIX = "optimizer.";

export interface SaveCheckpointOptions {
  trainer: Trainer;
  /** The run's generator (or its state) as it stands after the last completed step. */
  rng?: Rng | RngState;
  /** JSON-serialisable extras, e.g. `{ loader: loader.state(), schedule: {...} }`. */
  extra?: Record<string, unknown>;
}

export interface SavedFile {
  path: string;
  bytes: number;
  tensors: number;
}

export interface Checkpoint {
  path: string;
  version: number;
  /** Optimizer steps completed when the checkpoint was taken. */
  step: number;
  /** The run's RNG state, when one was saved: `new Rng(checkpoint.rng)` continues its stream. */
  rng?: RngState;
  optimizer: OptimizerConfig;
  /** Parameters by timm name. */
  parameters: Map<string, Float32Array>;
  /** Optimizer state by "optimizer.<slot>.<param name>". */
  state: Map<string, Float32Array>;
  /** Shape of every tensor above. */
  shapes: Map<string, number[]>;
  extra: Record<string, unknown>;
}

export interface RestoreOptions {
  /**
   * "restore" (default): the optimizer state and step continue exactly. "reset": parameters
   * only, a fresh optimizer at step 0 (e.g. fine-tuning from a checkpoint with a new optimizer);
   * the checkpoint's step is still in `checkpoint.step` for the learning-rate schedule.
   */
  optimizerState?: "restore" | "reset";
  /**
   * Accept optimizer hyper-parameters (betas, weight decay, …) that differ from the saved ones,
   * e.g. a deliberate change of weight decay on resume. The kind must still match.
   */
  allowOptimizerConfigChange?: boolean;
}

const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Lists at most `max` items, then "… and N more", so an error stays readable for 200 tensors. */
export function listSome(items: string[], max = 8): string {
  return items.length <= max
    ? items.join("; ")
    : `${items.slice(0, max).join("; ")}; … and ${items.length - max} more`;
}

/**
 * Writes the trainer's full state, the RNG state and extras to one safetensors file at `path`
 * (atomically: a crash mid-write leaves the previous file intact).
 */
export function saveCheckpoint(path: string, opts: SaveCheckpointOptions): SavedFile {
  const { trainer } = opts;
  const state = trainer.exportState();
  const shapes = trainer.stateShapes();
  // The step goes to metadata as exact text; exportState's float32 copy is exact only to 2^24.
  state.delete(STEP_KEY);
  shapes.delete(STEP_KEY);
  for (const s of trainer.layout.slots)
    if (s.name.startsWith(OPTIMIZER_PREFIX))
      throw new CheckpointError(
        `${path}: parameter "${s.name}" starts with "${OPTIMIZER_PREFIX}", which checkpoints reserve for optimizer state; rename the parameter`,
      );

  const metadata: Record<string, string> = {
    format: "pt",
    [MD.format]: CHECKPOINT_FORMAT,
    [MD.version]: String(CHECKPOINT_VERSION),
    [MD.step]: String(trainer.step),
    [MD.optimizer]: JSON.stringify(trainer.artifacts.optimizer),
  };
  if (opts.rng) metadata[MD.rng] = encodeRngState(opts.rng instanceof Rng ? opts.rng.state() : opts.rng);
  Object.assign(metadata, extraToMetadata(path, opts.extra ?? {}));

  const tensors = new Map([...state].map(([name, data]) => [name, { data, shape: shapes.get(name)! }]));
  const bytes = writeSafetensors(path, tensors, metadata);
  return { path, bytes, tensors: tensors.size };
}

function extraToMetadata(path: string, extra: Record<string, unknown>): Record<string, string> {
  const md: Record<string, string> = {};
  for (const [k, v] of Object.entries(extra)) {
    if (k === "") throw new CheckpointError(`${path}: extra keys must be non-empty`);
    let json: string | undefined;
    try {
      json = JSON.stringify(v);
    } catch (err) {
      throw new CheckpointError(`${path}: extra "${k}" is not JSON-serialisable (${(err as Error).message})`);
    }
    // JSON.stringify(undefined / a function) is undefined: it would silently vanish on load.
    if (json === undefined)
      throw new CheckpointError(
        `${path}: extra "${k}" is ${typeof v}, which JSON cannot hold; pass null instead`,
      );
    md[MD.extraPrefix + k] = json;
  }
  return md;
}

/** Reads one tensor as F32, refusing silent precision changes in a resumable checkpoint. */
function readF32(path: string, name: string, t: Tensor): Float32Array {
  if (t.dtype !== "F32")
    throw new CheckpointError(
      `${path}: tensor "${name}" is ${t.dtype}; a resumable checkpoint holds F32 only (resuming from converted values would not continue the same run). For pre-trained weights use loadWeights, which converts.`,
    );
  // openSafetensors reads each tensor into its own fresh (aligned) buffer: a view is safe.
  return new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4);
}

function openOrExplain(path: string): ReturnType<typeof openSafetensors> {
  if (!existsSync(path)) throw new CheckpointError(`${path}: no such checkpoint file`);
  return openSafetensors(path);
}

/** Reads and validates a checkpoint written by `saveCheckpoint`. */
export function loadCheckpoint(path: string): Checkpoint {
  const file = openOrExplain(path);
  try {
    const md = file.metadata;
    const fail = (msg: string) => new CheckpointError(`${path}: ${msg}`);
    if (md[MD.format] !== CHECKPOINT_FORMAT) {
      const hint =
        md[MD.format] === WEIGHTS_FORMAT
          ? "it is a weights-only file (saveWeights): load it with loadWeights and Trainer.loadParameters; it cannot resume an optimizer"
          : "it has no incubator training state (a plain weights file? load it with loadWeights)";
      throw fail(
        `metadata "${MD.format}" is ${JSON.stringify(md[MD.format])}, not "${CHECKPOINT_FORMAT}": ${hint}`,
      );
    }
    const version = Number(md[MD.version]);
    if (!Number.isInteger(version) || version < 1)
      throw fail(`metadata "${MD.version}" is not a version number: ${JSON.stringify(md[MD.version])}`);
    if (version > CHECKPOINT_VERSION)
      throw fail(
        `checkpoint format version ${version} is newer than this code understands (${CHECKPOINT_VERSION}); upgrade incubator to resume it`,
      );
    const step = Number(md[MD.step]);
    if (!Number.isSafeInteger(step) || step < 0)
      throw fail(`metadata "${MD.step}" must be a non-negative integer, got ${JSON.stringify(md[MD.step])}`);
    const rng =
      md[MD.rng] === undefined ? undefined : decodeRngState(md[MD.rng], `${path}: metadata "${MD.rng}"`);
    let optimizer: OptimizerConfig;
    try {
      optimizer = JSON.parse(md[MD.optimizer] ?? "") as OptimizerConfig;
    } catch {
      throw fail(`metadata "${MD.optimizer}" is missing or not JSON: ${JSON.stringify(md[MD.optimizer])}`);
    }
    if (!["adamw", "lamb", "sgd"].includes(optimizer?.kind))
      throw fail(`metadata "${MD.optimizer}" names no known optimizer: ${md[MD.optimizer]}`);
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(md)) {
      if (!k.startsWith(MD.extraPrefix)) continue;
      try {
        extra[k.slice(MD.extraPrefix.length)] = JSON.parse(v);
      } catch {
        throw fail(`metadata "${k}" is not valid JSON`);
      }
    }

    const slots = new Set(stateSlots(optimizer));
    const parameters = new Map<string, Float32Array>();
    const state = new Map<string, Float32Array>();
    const shapes = new Map<string, number[]>();
    for (const name of file.names) {
      const t = file.read(name);
      const data = readF32(path, name, t);
      shapes.set(name, t.shape);
      if (name.startsWith(OPTIMIZER_PREFIX)) {
        const slot = name.slice(OPTIMIZER_PREFIX.length).split(".")[0]!;
        if (!slots.has(slot))
          throw fail(
            `tensor "${name}": slot "${slot}" is not a state slot of ${optimizer.kind} (${[...slots].join(", ") || "none"}); the file is inconsistent`,
          );
        state.set(name, data);
      } else parameters.set(name, data);
    }
    return { path, version, step, ...(rng ? { rng } : {}), optimizer, parameters, state, shapes, extra };
  } finally {
    file.close();
  }
}

/** Optimizer hyper-parameters that differ, as "key: saved → current" lines. */
function configDiff(saved: OptimizerConfig, current: OptimizerConfig): string[] {
  const a = saved as unknown as Record<string, unknown>;
  const b = current as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k}: ${JSON.stringify(a[k]) ?? "default"} → ${JSON.stringify(b[k]) ?? "default"}`);
}

/**
 * Loads a checkpoint into a trainer built for the same model and optimizer. Validates first,
 * changes nothing on error, and names every tensor that does not fit with both shapes.
 */
export function restoreTrainer(trainer: Trainer, ckpt: Checkpoint, opts: RestoreOptions = {}): void {
  const mode = opts.optimizerState ?? "restore";
  const current = trainer.artifacts.optimizer;
  const where = ckpt.path;
  if (mode === "restore") {
    if (ckpt.optimizer.kind !== current.kind)
      throw new CheckpointError(
        `${where}: saved with optimizer ${ckpt.optimizer.kind}, but this trainer uses ${current.kind}; their states are not interchangeable. Build the trainer with ${ckpt.optimizer.kind}, or pass { optimizerState: "reset" } to load the parameters with a fresh optimizer.`,
      );
    const diff = configDiff(ckpt.optimizer, current);
    if (diff.length > 0 && !opts.allowOptimizerConfigChange)
      throw new CheckpointError(
        `${where}: optimizer hyper-parameters differ from the checkpoint's (${diff.join("; ")}). Use the saved config to resume exactly, or pass { allowOptimizerConfigChange: true } if the change is intended.`,
      );
  }

  const expected = trainer.stateShapes();
  expected.delete(STEP_KEY);
  if (mode === "reset")
    for (const k of [...expected.keys()]) if (k.startsWith(OPTIMIZER_PREFIX)) expected.delete(k);

  // Optimizer-state entries of a parameter that is itself missing (or unexpected) are implied,
  // not listed: one wrong depth would otherwise bury the message under 3× the names.
  const paramOf = (key: string) =>
    key.startsWith(OPTIMIZER_PREFIX) ? key.split(".").slice(2).join(".") : key;
  const missing: string[] = [];
  const mismatched: string[] = [];
  let stateProblem = false;
  for (const [name, shape] of expected) {
    const have = ckpt.shapes.get(name);
    if (!have) {
      if (name !== paramOf(name) && !ckpt.shapes.has(paramOf(name))) continue;
      if (name !== paramOf(name)) stateProblem = true;
      missing.push(`"${name}" (trainer expects ${shapeText(shape)})`);
    } else if (!sameShape(have, shape)) {
      const p = paramOf(name);
      // a state tensor of a parameter already reported as mismatched adds nothing
      if (p !== name && !sameShape(ckpt.shapes.get(p) ?? [], expected.get(p) ?? [])) continue;
      mismatched.push(`"${name}": checkpoint has ${shapeText(have)}, trainer expects ${shapeText(shape)}`);
    }
  }
  const unexpected: string[] = [];
  for (const [name, shape] of ckpt.shapes) {
    if (expected.has(name) || (mode === "reset" && name.startsWith(OPTIMIZER_PREFIX))) continue;
    if (name !== paramOf(name)) {
      if (!trainer.layout.byName.has(paramOf(name))) continue; // its parameter is unexpected too
      stateProblem = true;
    }
    unexpected.push(`"${name}" ${shapeText(shape)}`);
  }
  if (missing.length || mismatched.length || unexpected.length) {
    const parts: string[] = [];
    if (mismatched.length) parts.push(`shape mismatch: ${listSome(mismatched)}`);
    if (missing.length) parts.push(`missing tensors: ${listSome(missing)}`);
    if (unexpected.length) parts.push(`tensors this trainer has no place for: ${listSome(unexpected)}`);
    const hint = stateProblem
      ? " Optimizer state that is missing or extra for a parameter both sides have means the parameter is trainable in one and frozen in the other."
      : "";
    throw new CheckpointError(
      `${where} does not fit this trainer — ${parts.join(" | ")}. Build the trainer from the same model config (and the same frozen/trainable split) as the run that saved it; optimizer state of missing or extra parameters is not listed.${hint}`,
    );
  }

  const values = new Map<string, Float32Array>(ckpt.parameters);
  if (mode === "restore") {
    for (const [k, v] of ckpt.state) values.set(k, v);
    values.set(STEP_KEY, Float32Array.of(ckpt.step));
  }
  trainer.importState(values);
  const wantStep = mode === "restore" ? ckpt.step : 0;
  // Trainer.importState carries the step as float32, exact only up to 2^24 steps.
  if (trainer.step !== wantStep)
    throw new CheckpointError(
      `${where}: step ${ckpt.step} did not survive Trainer.importState (got ${trainer.step}); steps past 2^24 need an exact step setter on Trainer`,
    );
}

// ---------------------------------------------------------------------------------------------
// Weights only

export interface WeightsSource {
  parameters: ReadonlyMap<string, Float32Array>;
  /** Shapes by name, e.g. from `trainer.stateShapes()` or ParamSpecs. */
  shapes: ReadonlyMap<string, readonly number[]> | readonly { name: string; shape: readonly number[] }[];
}

/**
 * Writes parameters only, under their timm names, with `format: "pt"` metadata — loadable by
 * `safetensors.torch.load_file` + timm's `model.load_state_dict(strict=True)`.
 */
export function saveWeights(
  path: string,
  source: Trainer | WeightsSource,
  opts: { metadata?: Record<string, string> } = {},
): SavedFile {
  let parameters: ReadonlyMap<string, Float32Array>;
  let shapes: ReadonlyMap<string, readonly number[]>;
  const metadata: Record<string, string> = {
    ...opts.metadata,
    format: "pt",
    [MD.format]: WEIGHTS_FORMAT,
    [MD.version]: String(CHECKPOINT_VERSION),
  };
  if ("shapes" in source) {
    parameters = source.parameters;
    shapes = Array.isArray(source.shapes)
      ? new Map((source.shapes as { name: string; shape: readonly number[] }[]).map((s) => [s.name, s.shape]))
      : (source.shapes as ReadonlyMap<string, readonly number[]>);
  } else {
    const trainer = source as Trainer;
    parameters = trainer.parameters();
    shapes = new Map(trainer.layout.slots.map((s) => [s.name, s.shape]));
    metadata[MD.step] = String(trainer.step);
  }
  const tensors = new Map<string, { data: Float32Array; shape: readonly number[] }>();
  for (const [name, data] of parameters) {
    const shape = shapes.get(name);
    if (!shape) throw new CheckpointError(`${path}: no shape given for parameter "${name}"`);
    if (numel(shape) !== data.length)
      throw new CheckpointError(
        `${path}: parameter "${name}" has ${data.length} values but shape ${shapeText(shape)} needs ${numel(shape)}`,
      );
    tensors.set(name, { data, shape });
  }
  const bytes = writeSafetensors(path, tensors, metadata);
  return { path, bytes, tensors: tensors.size };
}

/**
 * What keeps tensors (name → shape) from matching an expected layout, one line each: missing
 * tensors, shape mismatches, and (with `strict`) tensors the layout does not name.
 */
export function layoutProblems(
  shapes: ReadonlyMap<string, readonly number[]>,
  expect: readonly { name: string; shape: readonly number[] }[],
  opts: { strict?: boolean } = {},
): string[] {
  const problems: string[] = [];
  for (const e of expect) {
    const shape = shapes.get(e.name);
    if (!shape) problems.push(`missing "${e.name}" (expected ${shapeText(e.shape)})`);
    else if (!sameShape(shape, e.shape))
      problems.push(`"${e.name}": file has ${shapeText(shape)}, expected ${shapeText(e.shape)}`);
  }
  if (opts.strict ?? true) {
    const wanted = new Set(expect.map((e) => e.name));
    for (const [n, shape] of shapes)
      if (!wanted.has(n)) problems.push(`unexpected "${n}" ${shapeText(shape)}`);
  }
  return problems;
}

export interface LoadWeightsOptions {
  /** The layout the weights must match (e.g. `vitParamSpecs(cfg)` or `trainer.layout.slots`). */
  expect?: readonly { name: string; shape: readonly number[] }[];
  /** Only these names are read (e.g. K blocks of a big pre-trained model); others are skipped. */
  select?: (name: string) => boolean;
  /** With `expect`: refuse tensors the layout does not name (default true). */
  strict?: boolean;
}

/**
 * Reads parameters from any safetensors weights file (ours, timm's, Hugging Face's), converting
 * F16/BF16/F64/integer tensors to F32. With `expect`, every expected tensor must be present with
 * its shape; errors name each offending tensor with both shapes.
 */
export function loadWeights(path: string, opts: LoadWeightsOptions = {}): Map<string, Float32Array> {
  const file = openOrExplain(path);
  try {
    const names = file.names.filter((n) => (opts.select ? opts.select(n) : true));
    if (opts.expect) {
      const shapes = new Map(names.map((n) => [n, file.info(n).shape]));
      const problems = layoutProblems(shapes, opts.expect, { strict: opts.strict ?? true });
      if (problems.length)
        throw new CheckpointError(
          `${path}: weights do not match the expected layout — ${listSome(problems)}. Check the model config (width, depth, classes, patch size, qkv bias); pass { strict: false } to ignore extra tensors or { select } to read a subset.`,
        );
    }
    const out = new Map<string, Float32Array>();
    for (const name of names) {
      const t = file.read(name);
      if (t.dtype === "BOOL")
        throw new CheckpointError(
          `${path}: tensor "${name}" is BOOL, not a weight; exclude it with { select }`,
        );
      // F32 needs no conversion: read() gave this tensor its own aligned buffer, so view it.
      out.set(name, t.dtype === "F32" ? readF32(path, name, t) : toFloat32(t));
    }
    return out;
  } finally {
    file.close();
  }
}
