/**
 * The deployment files (docker/, workers/, docs/deploy.md) may call only `incubator` subcommands
 * and options the command line really has (read from its commander program), and may set only
 * environment variables the program reads: the configuration schema (platform/config/config.ts),
 * the variables the source reads itself (e.g. INCUBATOR_WORKER_TOKEN), and the few third-party
 * ones listed below with who reads them.
 */
import type { Command, Option } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.ts";
import { DEVICE_REQUESTS } from "../../src/engine/runtime/device.ts";
import { CONFIG_VARIABLES } from "../../src/platform/config/config.ts";
import {
  type Found,
  incubatorInvocations,
  programEnvironment,
  variablesReadBySource,
} from "./deploy-files.ts";

/** Read by libraries and runtimes the program uses, not by its own code. */
const THIRD_PARTY: Record<string, string> = {
  AWS_ACCESS_KEY_ID: "AWS SDK v3 default credential chain (S3 artifact store)",
  AWS_SECRET_ACCESS_KEY: "AWS SDK v3 default credential chain (S3 artifact store)",
  ONNXRUNTIME_NODE_INSTALL: "onnxruntime-node's install script (which provider libraries to download)",
  NVIDIA_VISIBLE_DEVICES: "NVIDIA Container Toolkit (GPUs mounted into the container)",
  NVIDIA_DRIVER_CAPABILITIES: "NVIDIA Container Toolkit (driver libraries mounted)",
  CUDA_VISIBLE_DEVICES: "CUDA runtime (the GPUs this process sees)",
};

/** The command an argv names, or why it does not; checks its options and values too. */
function problemWith(argv: string[]): string | null {
  // commander's own flags, on the program and on every command.
  const builtIn = (word: string) => ["--help", "-h", "--version", "-V"].includes(word);
  if (argv.length === 1 && builtIn(argv[0]!)) return null;
  let command: Command = buildProgram();
  let i = 0;
  for (; i < argv.length; i++) {
    const sub = command.commands.find((c) => c.name() === argv[i]);
    if (!sub) break;
    command = sub;
  }
  if (i === 0) return `"${argv[0] ?? ""}" is not an incubator subcommand`;
  if (command.commands.length > 0)
    return `"${argv.slice(0, i).join(" ")}" needs one of its subcommands (${command.commands.map((c) => c.name()).join(", ")})`;
  const positional: string[] = [];
  for (; i < argv.length; i++) {
    const word = argv[i]!;
    if (!word.startsWith("-")) {
      positional.push(word);
      continue;
    }
    if (builtIn(word)) continue;
    const [flag, inline] = word.split("=", 2) as [string, string | undefined];
    const option = command.options.find((o: Option) => o.long === flag || o.short === flag);
    if (!option) return `"${command.name()}" has no option ${flag}`;
    if (option.required || option.optional) {
      const value = inline ?? argv[++i];
      if (option.required && value === undefined) return `${flag} needs a value`;
      if (command.name() === "worker" && flag === "--device" && !DEVICE_REQUESTS.includes(value as never))
        return `--device ${value} is not one of ${DEVICE_REQUESTS.join(", ")}`;
    }
  }
  const expected = command.registeredArguments.length;
  if (positional.length > expected)
    return `"${command.name()}" takes ${expected} argument(s), got ${positional.join(" ")}`;
  return null;
}

const where = (f: Found<unknown>) => `${f.source}: ${JSON.stringify(f.value)}`;

describe("deployment files call only real incubator commands", () => {
  const invocations = incubatorInvocations();

  it("finds the command lines of every kind of file (so this check cannot pass on nothing)", () => {
    const sources = new Set(invocations.map((f) => f.source.split(" ")[0]));
    for (const file of [
      "docker/Dockerfile",
      "docker/compose.yaml",
      "docker/k8s/api.yaml",
      "docker/k8s/migrate-job.yaml",
      "docker/k8s/worker-gpu.yaml",
      "workers/incubator-worker@.service",
      "docs/deploy.md",
      "workers/README.md",
    ])
      expect(sources, file).toContain(file);
  });

  it("every subcommand, option and --device value exists", () => {
    const problems = invocations.flatMap((f) => {
      const problem = problemWith(f.value);
      return problem ? [`${where(f)}: ${problem}`] : [];
    });
    expect(problems).toEqual([]);
  });

  it("the checker itself refuses what does not exist", () => {
    expect(problemWith(["serve", "--workers", "0"])).toBeNull();
    expect(problemWith(["worker-token", "create", "--name", "a"])).toBeNull();
    expect(problemWith(["start"])).toMatch(/not an incubator subcommand/);
    expect(problemWith(["worker", "--gpus", "1"])).toMatch(/no option --gpus/);
    expect(problemWith(["worker", "--device", "gpu"])).toMatch(/not one of/);
    expect(problemWith(["token"])).toMatch(/needs one of its subcommands/);
  });
});

describe("deployment files set only variables the program reads", () => {
  const known = new Set([...CONFIG_VARIABLES, ...variablesReadBySource(), ...Object.keys(THIRD_PARTY)]);

  it("the sources of truth are read from the code", () => {
    expect(CONFIG_VARIABLES).toContain("DATABASE_URL");
    expect(variablesReadBySource()).toContain("INCUBATOR_WORKER_TOKEN");
  });

  it("every variable is one the program (or a listed library) reads", () => {
    const found = programEnvironment();
    expect(found.length).toBeGreaterThan(20);
    const unknown = found.filter((f) => !known.has(f.value)).map(where);
    expect(unknown).toEqual([]);
  });
});
