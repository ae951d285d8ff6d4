/** Architecture, dataset and run rows for tests that need a run to exist. */
import type { Prisma } from "../../src/generated/prisma/client.ts";
import type { Db } from "../../src/platform/db/client.ts";

export interface RunRowsOptions {
  /** Unique prefix for the architecture and dataset names (random when omitted). */
  name?: string;
  architecture?: Partial<Prisma.ArchitectureCreateInput>;
  dataset?: Partial<Prisma.DatasetCreateInput>;
  run?: Partial<Prisma.RunUncheckedCreateInput>;
  /** Create one Module row per entry of the architecture's moduleSplit. */
  modules?: boolean;
}

/** A 4-block, 4-module ViT on synthetic data, with overrides. */
export async function createArchitectureAndDataset(db: Db, o: Omit<RunRowsOptions, "run" | "modules"> = {}) {
  const name = o.name ?? `t-${Math.random().toString(36).slice(2, 10)}`;
  const architecture = await db.architecture.create({
    data: {
      name,
      imageSize: 16,
      patchSize: 4,
      width: 64,
      depth: 4,
      heads: 4,
      numClasses: 10,
      moduleSplit: [1, 1, 1, 1],
      ...o.architecture,
    },
  });
  const dataset = await db.dataset.create({
    data: {
      name: `${name}-data`,
      format: "synthetic",
      numClasses: 10,
      trainSize: 10,
      testSize: 10,
      ...o.dataset,
    },
  });
  return { architecture, dataset };
}

export async function createRunRows(db: Db, o: RunRowsOptions = {}) {
  const { architecture, dataset } = await createArchitectureAndDataset(db, o);
  let start = 0;
  const modules = architecture.moduleSplit.map((blocks, index) => {
    const row = { index, blockStart: start, blockEnd: start + blocks };
    start += blocks;
    return row;
  });
  const run = await db.run.create({
    data: {
      kind: "INCUBATION",
      architectureId: architecture.id,
      datasetId: dataset.id,
      ...o.run,
      ...(o.modules ? { modules: { create: modules } } : {}),
    },
  });
  return { architecture, dataset, run };
}
