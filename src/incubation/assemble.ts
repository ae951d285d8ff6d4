/**
 * Assembly: the target model's parameters, stage i taken from modular-training job i.
 *
 * Each job's result holds the hybrid's parameters (module i under target names, meta ones
 * under "meta."). We take from job i exactly the names module i owns and nothing else, so no
 * meta parameter can survive into the final model, and a name missing from a job, or a shape
 * that differs from the target's, is an error naming the module and the tensor.
 */
import type { VitConfig } from "../engine/models/vit.ts";
import { moduleParamSpecs } from "./modules.ts";

export interface AssemblySource {
  /** Module index this job trained. */
  moduleIndex: number;
  parameters: ReadonlyMap<string, Float32Array>;
}

export interface Assembly {
  parameters: Map<string, Float32Array>;
  /** Target parameter name → module index it came from (lineage). */
  origin: Map<string, number>;
}

export function assembleTarget(
  target: VitConfig,
  split: readonly number[],
  sources: readonly AssemblySource[],
): Assembly {
  const k = split.length;
  const byModule = new Map<number, AssemblySource>();
  for (const source of sources) {
    if (byModule.has(source.moduleIndex)) throw new Error(`two results for module ${source.moduleIndex}`);
    byModule.set(source.moduleIndex, source);
  }
  const parameters = new Map<string, Float32Array>();
  const origin = new Map<string, number>();
  for (let i = 0; i < k; i++) {
    const source = byModule.get(i);
    if (!source) throw new Error(`cannot assemble: no result for module ${i} of ${k}`);
    for (const spec of moduleParamSpecs(target, split, i)) {
      const value = source.parameters.get(spec.name);
      if (!value) throw new Error(`module ${i}'s result has no tensor "${spec.name}"`);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      if (value.length !== size) {
        throw new Error(
          `module ${i}'s "${spec.name}" has ${value.length} values; the target needs [${spec.shape}] = ${size}`,
        );
      }
      parameters.set(spec.name, value);
      origin.set(spec.name, i);
    }
  }
  return { parameters, origin };
}
