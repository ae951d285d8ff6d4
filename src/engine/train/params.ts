/**
 * Parameter specs and the flat-buffer layout.
 *
 * All trainable parameters live in ONE float32 vector (and each optimizer-state slot in one more
 * of the same length); frozen parameters in another. Inside the step graph each parameter is a
 * Slice+Reshape of its flat buffer, and the per-parameter gradients are concatenated back into
 * one flat gradient — so a step has a handful of inputs and outputs instead of hundreds, and the
 * optimizer's elementwise update is a few big ops.
 *
 * Trainable order: parameters with weight decay first, then those without. The decay mask is
 * then just "the first `decaySize` elements", so no per-element mask tensor is stored.
 */
import type { Rng } from "../rng.ts";

export type ParamInit =
  | { kind: "zeros" }
  | { kind: "ones" }
  | { kind: "constant"; value: number }
  | { kind: "normal"; std: number }
  /** timm's trunc_normal_(std): normal truncated at ±2 (absolute, as timm and PyTorch do) */
  | { kind: "truncNormal"; std: number }
  /** Uniform on [−bound, bound]: PyTorch's default Conv2d init (kaiming_uniform_(a=√5) and its bias) */
  | { kind: "uniform"; bound: number }
  /** A 2-D [rows, cols] identity, cut or zero-padded when not square: W[r][c] = (r == c). */
  | { kind: "eye" };

export interface ParamSpec {
  /** timm-style name, e.g. "blocks.0.attn.qkv.weight" */
  name: string;
  shape: number[];
  /** default true; frozen parameters get no gradient and no optimizer state */
  trainable?: boolean;
  /** weight decay applies (default: rank ≥ 2, i.e. not biases, norms or other 1-D params) */
  decay?: boolean;
  init?: ParamInit;
}

export interface ParamSlot {
  name: string;
  shape: number[];
  size: number;
  group: "trainable" | "frozen";
  offset: number;
  decay: boolean;
}

export class FlatLayout {
  readonly slots: ParamSlot[];
  readonly byName = new Map<string, ParamSlot>();
  readonly trainableSize: number;
  readonly frozenSize: number;
  /** trainable elements [0, decaySize) get weight decay */
  readonly decaySize: number;

  constructor(readonly specs: readonly ParamSpec[]) {
    const seen = new Set<string>();
    for (const s of specs) {
      if (seen.has(s.name)) throw new Error(`duplicate parameter name "${s.name}"`);
      seen.add(s.name);
      if (!s.shape.every((d) => Number.isInteger(d) && d > 0))
        throw new Error(`parameter "${s.name}" needs a static positive shape, got [${s.shape}]`);
    }
    const trainable = specs.filter((s) => s.trainable !== false);
    const ordered = [
      ...trainable.filter((s) => decays(s)).map((s) => ({ s, group: "trainable" as const })),
      ...trainable.filter((s) => !decays(s)).map((s) => ({ s, group: "trainable" as const })),
      ...specs.filter((s) => s.trainable === false).map((s) => ({ s, group: "frozen" as const })),
    ];
    const offsets = { trainable: 0, frozen: 0 };
    this.slots = ordered.map(({ s, group }) => {
      const size = s.shape.reduce((a, b) => a * b, 1);
      const slot: ParamSlot = {
        name: s.name,
        shape: [...s.shape],
        size,
        group,
        offset: offsets[group],
        decay: group === "trainable" && decays(s),
      };
      offsets[group] += size;
      this.byName.set(s.name, slot);
      return slot;
    });
    this.trainableSize = offsets.trainable;
    this.frozenSize = offsets.frozen;
    this.decaySize = this.slots.filter((s) => s.decay).reduce((a, s) => a + s.size, 0);
  }

  get trainableSlots(): ParamSlot[] {
    return this.slots.filter((s) => s.group === "trainable");
  }

  get frozenSlots(): ParamSlot[] {
    return this.slots.filter((s) => s.group === "frozen");
  }

  slot(name: string): ParamSlot {
    const s = this.byName.get(name);
    if (!s) throw new Error(`unknown parameter "${name}"`);
    return s;
  }

  /** A view of one parameter inside its group's flat buffer (no copy). */
  view(buffers: { trainable: Float32Array; frozen: Float32Array }, name: string): Float32Array {
    const s = this.slot(name);
    return buffers[s.group].subarray(s.offset, s.offset + s.size);
  }

  /** Fresh flat buffers initialised per each spec's `init` (zeros by default). */
  initialise(rng: Rng): { trainable: Float32Array; frozen: Float32Array } {
    const buffers = {
      trainable: new Float32Array(this.trainableSize),
      frozen: new Float32Array(this.frozenSize),
    };
    for (const spec of this.specs) {
      const v = this.view(buffers, spec.name);
      const init = spec.init ?? { kind: "zeros" };
      const r = rng.fork(`init/${spec.name}`);
      switch (init.kind) {
        case "zeros":
          break;
        case "ones":
          v.fill(1);
          break;
        case "constant":
          v.fill(init.value);
          break;
        case "normal":
          for (let i = 0; i < v.length; i++) v[i] = r.normal() * init.std;
          break;
        case "truncNormal":
          r.fillTruncNormal(v, init.std);
          break;
        case "uniform":
          for (let i = 0; i < v.length; i++) v[i] = (2 * r.uniform() - 1) * init.bound;
          break;
        case "eye": {
          if (spec.shape.length !== 2) throw new Error(`"${spec.name}": eye init needs a 2-D shape`);
          const [rows, cols] = spec.shape as [number, number];
          for (let i = 0; i < Math.min(rows, cols); i++) v[i * cols + i] = 1;
          break;
        }
      }
    }
    return buffers;
  }
}

function decays(s: ParamSpec): boolean {
  return s.decay ?? s.shape.length >= 2;
}
