/**
 * A whole incubation run with ARTIFACT_STORE=s3: the platform's API and its local worker keep
 * every checkpoint, module weight file and the final ONNX model in a bucket on a real
 * S3-compatible server (s3rver on 127.0.0.1), nothing in DATA_DIR/artifacts; the API serves the
 * final model from the bucket, verified.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { openArtifactStore } from "../../src/platform/artifacts/open.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { startTestS3, type TestS3 } from "../helpers/s3.ts";
import { createTinyArchitectureAndDataset, runTinyToEnd, tinyOverrides } from "../helpers/tiny-run.ts";
import { useTempDir } from "../helpers/tmp.ts";

const t = useTestDatabase();
const dataDir = useTempDir("s3-run");
let s3: TestS3;
let local: LocalPlatform & { token: string };

beforeAll(async () => {
  s3 = await startTestS3();
  local = await startTestPlatform(t, dataDir, {
    workers: 1,
    threads: 1,
    artifactStore: s3.settings(dataDir),
  });
});

afterAll(async () => {
  await local?.close();
  await s3?.close();
});

describe("a run with its artifacts in S3", () => {
  it("completes; every artifact is a verified object in the bucket and the API serves the final model from it", async () => {
    const ids = await createTinyArchitectureAndDataset(local.api.url, "s3-run", 64);
    const run = await runTinyToEnd(
      local.api.url,
      {
        kind: "INCUBATION",
        ...ids,
        seed: 2,
        overrides: tinyOverrides({ pretrain: 4, modular: 4, finetune: 4 }),
      },
      { timeoutMs: 240_000 },
    );
    const kinds = new Set(run.artifacts.map((a) => a.kind));
    expect(kinds).toContain("WEIGHTS");
    expect(kinds).toContain("ASSEMBLED_MODEL");
    expect(kinds).toContain("FINAL_MODEL_ONNX");
    // Read back from the bucket on a machine with an empty cache: every object whole and verified.
    const elsewhere = openArtifactStore(s3.settings(useTempDir("s3-run-elsewhere")));
    for (const a of run.artifacts) {
      expect(await elsewhere.has(a.sha256, { sizeBytes: a.sizeBytes, verify: true }), a.kind).toBe(true);
    }
    expect(existsSync(join(dataDir, "artifacts"))).toBe(false);

    const final = run.artifacts.find((a) => a.kind === "FINAL_MODEL_ONNX")!;
    const res = await fetch(new URL(`/artifacts/${final.sha256}`, local.api.url), {
      headers: { authorization: `Bearer ${local.token}` },
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(createHash("sha256").update(body).digest("hex")).toBe(final.sha256);
  }, 300_000);
});
