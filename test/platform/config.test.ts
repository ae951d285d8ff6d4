import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/platform/config/config.ts";

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

  it("treats empty variables as unset", () => {
    expect(loadConfig({ PORT: "", DATABASE_URL: "" }).PORT).toBe(4000);
  });
});
