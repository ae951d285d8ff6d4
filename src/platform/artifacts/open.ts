/** The artifact store that settings name: the one place a process turns configuration into a store. */
import { join } from "node:path";
import { createS3Client, S3ArtifactStore } from "./s3-store.ts";
import type { ArtifactStoreSettings } from "./settings.ts";
import { type ArtifactStore, LocalArtifactStore } from "./store.ts";

/** Local artifacts live in `DATA_DIR/artifacts`; an S3 store's verified downloads in `DATA_DIR/artifact-cache`. */
export function openArtifactStore(s: ArtifactStoreSettings): ArtifactStore {
  if (s.kind === "local") return new LocalArtifactStore(join(s.dataDir, "artifacts"));
  return new S3ArtifactStore({
    client: createS3Client(s),
    bucket: s.bucket,
    prefix: s.prefix,
    cache: new LocalArtifactStore(join(s.dataDir, "artifact-cache")),
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    ...(s.partSizeBytes ? { partSizeBytes: s.partSizeBytes } : {}),
  });
}
