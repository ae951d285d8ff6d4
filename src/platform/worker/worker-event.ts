/**
 * A job process's event as it travels from a worker to the platform (checkpoint files already
 * uploaded: a checkpoint names its sha256). Workers calling through the API send these as JSON,
 * so they are parsed here, once, before the lifecycle turns them into run events.
 */
import { z } from "zod";
import { dataStats, evalPointFields, progressFields } from "../events/run-event.ts";

const count = z.number().int().min(0);
const finite = z.number().finite();

export const workerEvent = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("start"),
    phase: z.enum(["pretrain", "modular", "finetune", "e2e"]),
    moduleIndex: count.optional(),
    totalSteps: count,
    startStep: count,
    trainImages: count,
    data: dataStats,
  }),
  z.object({ type: z.literal("progress"), ...progressFields }),
  z.object({ type: z.literal("eval"), accuracy: finite, loss: finite, images: count }),
  z.object({ type: z.literal("evalPoint"), ...evalPointFields }),
  z.object({
    type: z.literal("checkpoint"),
    step: count,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits"),
    sizeBytes: count,
  }),
]);

export type WorkerEvent = z.infer<typeof workerEvent>;
