/**
 * Artifact bytes between workers and the API over real HTTP: uploads do not trust a damaged
 * stored copy.
 */
import { createHash } from "node:crypto";
import { readFileSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { createWorkerToken } from "../../src/platform/auth/worker-tokens.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { useTempDir } from "../helpers/tmp.ts";
import { useApiServer } from "./support.ts";

const t = useTestDatabase();
const dir = useTempDir("artifact-transfer");
const store = new LocalArtifactStore(join(dir, "server-artifacts"));
const api = useApiServer(t, { artifacts: store });
let secret: string;

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const bytes = (n: number, seed = 1) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + seed) & 0xff));

beforeAll(async () => {
  ({ secret } = await createWorkerToken(t.db, { name: "uploader", labels: [] }));
});

describe("PUT /artifacts/<sha256>", () => {
  const put = (content: Buffer) =>
    fetch(new URL(`/artifacts/${sha(content)}`, api.server.url), {
      method: "PUT",
      body: content,
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/octet-stream" },
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { stored: boolean } }));

  it("replaces a truncated stored copy instead of answering 'already stored'", async () => {
    const content = bytes(50_000);
    expect(await put(content)).toMatchObject({ status: 201, body: { stored: true } });
    expect(await put(content)).toMatchObject({ status: 200, body: { stored: false } });

    const stored = join(store.root, sha(content).slice(0, 2), sha(content).slice(2));
    truncateSync(stored, 1000);
    expect(await put(content)).toMatchObject({ status: 201, body: { stored: true } });
    expect(readFileSync(stored)).toEqual(content);
  });
});
