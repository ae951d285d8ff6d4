/**
 * glibc malloc settings for processes that train.
 *
 * Every training step hands the new parameters and optimizer state (three flat vectors of 4 bytes
 * per trainable parameter: 65 MB for deit-t, 260 MB for vit-small-16) from ONNX Runtime to
 * JavaScript, and onnxruntime-node copies each into a freshly allocated ArrayBuffer. glibc serves
 * allocations that large with a fresh mmap, so every step touches every page of them anew; on
 * these machines that cost ~280 ms per 87 MB output, longer than the step's arithmetic on
 * vit-small-16 (bench/RESULTS.md, "Where a step's time went outside ONNX Runtime").
 * `glibc.malloc.hugetlb=1` makes glibc ask for transparent huge pages on those mappings (and its
 * heap): 512× fewer page faults, the same peak memory. ONNX Runtime's own arena benefits too.
 *
 * GLIBC_TUNABLES is read when a process starts, so it goes into the environment of the processes
 * we start to train (job processes, the engine benchmark's children) and `incubate`/`job` started
 * by hand re-run themselves once with it (cli/training-process.ts). Other C libraries ignore it.
 */

export const TRAINING_TUNABLE = "glibc.malloc.hugetlb=1";
const TUNABLE_NAME = TRAINING_TUNABLE.split("=")[0]!;

/** Whether `env` already says what glibc should do about huge pages (ours or the user's choice). */
export function hasTrainingTunables(env: NodeJS.ProcessEnv): boolean {
  return (env.GLIBC_TUNABLES ?? "").split(":").some((t) => t.split("=")[0] === TUNABLE_NAME);
}

/** `env` with the training tunable added to any GLIBC_TUNABLES already there; a user's own setting of it wins. */
export function trainingEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (hasTrainingTunables(env)) return { ...env };
  const tunables = [env.GLIBC_TUNABLES, TRAINING_TUNABLE].filter(Boolean).join(":");
  return { ...env, GLIBC_TUNABLES: tunables };
}

/** `env` with glibc's default for huge pages: the training tunable removed, other tunables kept. */
export function defaultMallocEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const rest = (env.GLIBC_TUNABLES ?? "").split(":").filter((t) => t && t.split("=")[0] !== TUNABLE_NAME);
  const out = { ...env };
  if (rest.length) out.GLIBC_TUNABLES = rest.join(":");
  else delete out.GLIBC_TUNABLES;
  return out;
}
