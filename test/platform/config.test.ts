import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { artifactStoreFromConfig, ConfigError, loadConfig } from "../../src/platform/config/config.ts";

describe("configuration", () => {
  it("has defaults that start a local server on the embedded database", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ PORT: 4000, DATA_DIR: ".data", LOG_LEVEL: "info" });
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it("names the variable and the fix for a bad value", () => {
    expect(() => loadConfig({ PORT: "abc" })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: "abc" })).toThrow(/PORT="abc" must be a number/);
    expect(() => loadConfig({ PORT: "70000" })).toThrow(/PORT="70000" must be between 0 and 65535/);
    expect(() => loadConfig({ DATABASE_URL: "mysql://x" })).toThrow(
      /DATABASE_URL="mysql:\/\/x" must be a postgresql:\/\/ URL/,
    );
    expect(() => loadConfig({ LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL="loud" must be one of fatal, error/);
  });

  it("artifacts: local by default; s3 needs a bucket and takes its server, region and addressing", () => {
    expect(artifactStoreFromConfig(loadConfig({}))).toEqual({ kind: "local", dataDir: resolve(".data") });
    expect(() => loadConfig({ ARTIFACT_STORE: "s3" })).toThrow(
      /S3_BUCKET="" is required when ARTIFACT_STORE=s3/,
    );
    expect(() => loadConfig({ ARTIFACT_STORE: "gcs" })).toThrow(
      /ARTIFACT_STORE="gcs" must be one of local, s3/,
    );
    expect(() => loadConfig({ S3_FORCE_PATH_STYLE: "yes" })).toThrow(
      /S3_FORCE_PATH_STYLE="yes" must be true or false/,
    );
    expect(() => loadConfig({ S3_ENDPOINT: "minio:9000" })).toThrow(/S3_ENDPOINT="minio:9000" must be a URL/);
    const s3 = loadConfig({
      ARTIFACT_STORE: "s3",
      S3_BUCKET: "models",
      S3_PREFIX: "prod/",
      S3_ENDPOINT: "http://minio:9000",
      S3_FORCE_PATH_STYLE: "true",
      DATA_DIR: "/srv/incubator",
    });
    expect(artifactStoreFromConfig(s3)).toEqual({
      kind: "s3",
      dataDir: "/srv/incubator",
      bucket: "models",
      prefix: "prod/",
      region: "us-east-1",
      endpoint: "http://minio:9000",
      forcePathStyle: true,
    });
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ PORT: "", DATABASE_URL: "" }).PORT).toBe(4000);
  });
});
