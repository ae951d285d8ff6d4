/**
 * Which artifact store a process uses, as configuration describes it (`config.ts`
 * `artifactStoreFromConfig` builds it from ARTIFACT_STORE and S3_*; tests build it directly).
 * Credentials are not here: the AWS SDK's standard chain finds them (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, a profile, an instance or pod role).
 */
export const ARTIFACT_STORE_KINDS = ["local", "s3"] as const;
export type ArtifactStoreKind = (typeof ARTIFACT_STORE_KINDS)[number];

export type ArtifactStoreSettings =
  /** `dataDir/artifacts`. */
  | { kind: "local"; dataDir: string }
  /** Objects under `prefix` in `bucket`; downloads are verified into `dataDir/artifact-cache`. */
  | {
      kind: "s3";
      dataDir: string;
      bucket: string;
      prefix: string;
      region: string;
      endpoint?: string;
      forcePathStyle: boolean;
      /** Multipart part size (default 16 MiB; S3's minimum is 5 MiB). */
      partSizeBytes?: number;
    };
