/**
 * Training state carried in a checkpoint's safetensors `__metadata__` (a string → string map):
 * the step, the run's RNG state and any JSON-serialisable extras (e.g. the data loader's
 * state), so a resumed job continues the same random streams bit for bit.
 */
import type { RngState } from "../rng.ts";
import { SafetensorsError } from "./safetensors.ts";

export interface TrainingState {
  step: number;
  rng: RngState;
  /** Extra JSON values, stored one metadata key each as "extra.<key>". */
  extra?: Record<string, unknown>;
}

const FORMAT = "incubator.training-state/1";

export function trainingStateToMetadata(state: TrainingState): Record<string, string> {
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new SafetensorsError(`training state: step must be a non-negative integer, got ${state.step}`);
  }
  const md: Record<string, string> = {
    format: FORMAT,
    step: String(state.step),
    rng: encodeRngState(state.rng),
  };
  for (const [k, v] of Object.entries(state.extra ?? {})) md[`extra.${k}`] = JSON.stringify(v);
  return md;
}

export function trainingStateFromMetadata(md: Record<string, string>, where = "checkpoint"): TrainingState {
  if (md["format"] !== FORMAT) {
    throw new SafetensorsError(
      `${where}: metadata "format" is ${JSON.stringify(md["format"])}, expected "${FORMAT}"; this checkpoint has no resumable training state`,
    );
  }
  const step = Number(md["step"]);
  if (!Number.isSafeInteger(step) || step < 0)
    throw new SafetensorsError(`${where}: metadata "step" is not an integer: ${md["step"]}`);
  const rng = decodeRngState(md["rng"], `${where}: metadata "rng"`);
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(md)) {
    if (!k.startsWith("extra.")) continue;
    try {
      extra[k.slice(6)] = JSON.parse(v);
    } catch {
      throw new SafetensorsError(`${where}: metadata "${k}" is not valid JSON`);
    }
  }
  return { step, rng, extra };
}

/** An Rng state as text: four 8-digit hex words, e.g. "0a1b2c3d,…" (exact, unlike a float). */
export function encodeRngState(rng: RngState): string {
  return rng.map((w) => (w >>> 0).toString(16).padStart(8, "0")).join(",");
}

export function decodeRngState(text: string | undefined, what: string): RngState {
  const words = (text ?? "").split(",");
  if (words.length !== 4 || !words.every((w) => /^[0-9a-f]{8}$/.test(w))) {
    throw new SafetensorsError(`${what} must be four 8-digit hex words, got ${JSON.stringify(text)}`);
  }
  return words.map((w) => Number.parseInt(w, 16)) as unknown as RngState;
}
