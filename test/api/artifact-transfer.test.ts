/**
 * Artifact bytes between workers and the API over real HTTP: uploads do not trust a damaged
 * stored copy, and an API worker's download cache stays whole when jobs on one machine fetch
 * the same artifact at once.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, truncateSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { createWorkerToken } from "../../src/platform/auth/worker-tokens.ts";
import { ApiWorkerBackend } from "../../src/platform/worker/api-backend.ts";
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

/**
 * Serves one artifact in 32 KiB chunks, `pauseMs[n]` apart for the n-th request (default
 * 20 ms), so that downloads overlap as a test needs; `corrupt` flips a byte and `dropAfter`
 * cuts the connection after that many bytes. `sent` counts the chunks written.
 */
async function slowArtifactServer(
  content: Buffer,
  o: { corrupt?: boolean; dropAfter?: number; pauseMs?: number[] } = {},
) {
  let requests = 0;
  let sent = 0;
  const http: Server = createServer((_req, res) => {
    const pauseMs = o.pauseMs?.[requests] ?? 20;
    requests++;
    const body = Buffer.from(content);
    if (o.corrupt) body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    let offset = 0;
    const step = () => {
      if (o.dropAfter !== undefined && offset >= o.dropAfter) return res.destroy();
      if (offset >= body.length) return res.end();
      res.write(body.subarray(offset, offset + 32_768));
      offset += 32_768;
      sent++;
      setTimeout(step, pauseMs);
    };
    step();
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  const { port } = http.address() as AddressInfo;
  return {
    apiUrl: `http://127.0.0.1:${port}/graphql`,
    requests: () => requests,
    sent: () => sent,
    close: () => new Promise<void>((r) => http.close(() => r())),
  };
}

describe("ApiWorkerBackend.getArtifact (the worker's download cache)", () => {
  const backend = (apiUrl: string, cacheDir: string) =>
    new ApiWorkerBackend({
      apiUrl,
      token: "unused",
      identity: { workerId: "w", labels: [], shards: [] },
      cacheDir,
    });
  const cacheTemps = (cacheDir: string) => readdirSync(join(cacheDir, ".tmp"));

  it("two jobs on one machine downloading the same artifact at once both get the whole, verified file", async () => {
    const content = bytes(200_000, 3);
    // The first download is slow, the second starts while it runs and finishes first: with one
    // shared temporary name the second truncated and then removed the first one's file.
    const origin = await slowArtifactServer(content, { pauseMs: [100, 0, 0] });
    try {
      const cacheDir = join(dir, "cache-shared");
      // Two worker processes' backends over one cache directory (the machine's cache).
      const [a, b] = [backend(origin.apiUrl, cacheDir), backend(origin.apiUrl, cacheDir)];
      const slow = a.getArtifact(sha(content));
      while (origin.sent() < 2) await new Promise((r) => setTimeout(r, 10));
      const fast = b.getArtifact(sha(content));
      const paths = await Promise.all([slow, fast]);
      expect(origin.requests()).toBe(2); // they overlapped: neither found it cached
      for (const path of paths) expect(readFileSync(path)).toEqual(content);
      expect(cacheTemps(cacheDir)).toEqual([]);
      // Cached now: no further download.
      expect(readFileSync(await b.getArtifact(sha(content)))).toEqual(content);
      expect(origin.requests()).toBe(2);
    } finally {
      await origin.close();
    }
  });

  it("refuses bytes that do not hash to the address, and a cut-off download, leaving nothing behind", async () => {
    const content = bytes(100_000, 5);
    const cacheDir = join(dir, "cache-bad");
    const corrupt = await slowArtifactServer(content, { corrupt: true });
    try {
      await expect(backend(corrupt.apiUrl, cacheDir).getArtifact(sha(content))).rejects.toThrow(/hash to/);
    } finally {
      await corrupt.close();
    }
    const cut = await slowArtifactServer(content, { dropAfter: 65_536 });
    try {
      await expect(backend(cut.apiUrl, cacheDir).getArtifact(sha(content))).rejects.toThrow();
    } finally {
      await cut.close();
    }
    expect(cacheTemps(cacheDir)).toEqual([]);
    expect(await new LocalArtifactStore(cacheDir).has(sha(content))).toBe(false);
  });

  it("a damaged cached copy is downloaded again", async () => {
    const content = bytes(60_000, 9);
    const origin = await slowArtifactServer(content);
    try {
      const cacheDir = join(dir, "cache-damaged");
      const worker = backend(origin.apiUrl, cacheDir);
      const path = await worker.getArtifact(sha(content));
      truncateSync(path, 100);
      expect(readFileSync(await worker.getArtifact(sha(content)))).toEqual(content);
      expect(origin.requests()).toBe(2);
    } finally {
      await origin.close();
    }
  });
});
