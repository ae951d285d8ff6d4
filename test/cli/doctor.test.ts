/**
 * `incubator doctor` as a user runs it (the real command, real PostgreSQL, real S3-compatible
 * server): a healthy configuration exits 0; an unreachable database or a missing bucket exits 1
 * with a line that says which and why.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hugePagesCheck } from "../../src/cli/doctor-checks.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { spawnIncubator } from "../helpers/process.ts";
import { startTestS3, type TestS3 } from "../helpers/s3.ts";
import { useTempDir } from "../helpers/tmp.ts";

const t = useTestDatabase();
const dir = useTempDir("doctor");
let s3: TestS3;

beforeAll(async () => {
  s3 = await startTestS3();
});
afterAll(async () => {
  await s3?.close();
});

interface Report {
  ok: boolean;
  checks: { check: string; status: string; detail: string }[];
}

async function doctor(env: NodeJS.ProcessEnv, args: string[] = []) {
  const proc = spawnIncubator(["doctor", ...args], { DATA_DIR: join(dir, "data"), ...env });
  const code = await proc.exited;
  return { code, output: proc.output() };
}
const statusOf = (report: Report, check: string) => report.checks.find((c) => c.check === check)?.status;

describe("incubator doctor", () => {
  it("a healthy configuration (migrated database, local artifacts): every check passes, exit 0", async () => {
    const { code, output } = await doctor({ DATABASE_URL: t.url, ARTIFACT_STORE: "local" }, ["--json"]);
    expect(code, output).toBe(0);
    const report = JSON.parse(output.slice(output.indexOf("{"), output.lastIndexOf("}") + 1)) as Report;
    expect(report.ok).toBe(true);
    expect(statusOf(report, "onnx runtime")).toBe("ok");
    expect(report.checks.find((c) => c.check === "onnx runtime")?.detail).toMatch(
      /onnxruntime-node \d+\.\d+\.\d+/,
    );
    expect(statusOf(report, "provider cpu")).toBe("ok");
    expect(report.checks.map((c) => c.check)).toEqual(
      expect.arrayContaining(["provider cuda", "provider webgpu", "threads", "huge pages", "gpu"]),
    );
    expect(statusOf(report, "database")).toBe("ok");
    expect(report.checks.find((c) => c.check === "migrations")).toMatchObject({
      status: "ok",
      detail: expect.stringMatching(/^all \d+ applied$/),
    });
    expect(report.checks.find((c) => c.check === "artifact store")?.detail).toMatch(
      /^ARTIFACT_STORE=local: writable/,
    );
    expect(report.checks.every((c) => c.status !== "fail")).toBe(true);
  }, 120_000);

  it("an S3 bucket that is there: reachable, exit 0, as a table", async () => {
    const { code, output } = await doctor({ DATABASE_URL: t.url, ...s3.env() });
    expect(code, output).toBe(0);
    expect(output).toMatch(/^CHECK\s+STATUS\s+DETAIL$/m);
    expect(output).toMatch(
      /^artifact store\s+ok\s+ARTIFACT_STORE=s3: bucket reachable \(s3:\/\/artifacts\/ at http:\/\/127\.0\.0\.1:\d+\)$/m,
    );
  }, 120_000);

  it("an unreachable database exits 1 with a line naming DATABASE_URL", async () => {
    const { code, output } = await doctor({ DATABASE_URL: "postgresql://postgres@127.0.0.1:1/postgres" });
    expect(code).toBe(1);
    expect(output).toMatch(
      /^database\s+fail\s+DATABASE_URL: cannot connect to postgresql:\/\/postgres@127\.0\.0\.1:1\/postgres/m,
    );
    expect(output).toMatch(/^incubator doctor: database failed$/m);
  }, 120_000);

  it("a missing bucket exits 1 with a line naming S3_BUCKET", async () => {
    const { code, output } = await doctor({ DATABASE_URL: t.url, ...s3.env(), S3_BUCKET: "not-created" });
    expect(code).toBe(1);
    expect(output).toMatch(
      /^artifact store\s+fail\s+ARTIFACT_STORE=s3: S3_BUCKET: bucket "not-created" does not exist/m,
    );
    expect(output).toMatch(/^incubator doctor: artifact store failed$/m);
  }, 120_000);
});

describe("start-up with a bucket that is not there", () => {
  it("serve and a database worker stop at start with the line doctor shows, before taking any work", async () => {
    const env = {
      DATABASE_URL: t.url,
      ...s3.env(),
      S3_BUCKET: "not-created",
      PORT: "0",
      AUTH_MODE: "tokens",
    };
    for (const args of [["serve"], ["worker"]]) {
      const proc = spawnIncubator(args, { DATA_DIR: join(dir, `start-${args[0]}`), ...env });
      expect(await proc.exited, proc.output()).toBe(1);
      expect(proc.output()).toMatch(
        /^incubator: S3_BUCKET: bucket "not-created" does not exist at http:\/\/127\.0\.0\.1:\d+; create it/m,
      );
    }
  }, 120_000);

  it("huge pages: ok when the kernel gives them on request, a warning with the fix when it never does", () => {
    const file = (content: string) => {
      const path = join(dir, `thp-${content.replace(/\W+/g, "-")}`);
      writeFileSync(path, `${content}\n`);
      return path;
    };
    expect(hugePagesCheck(file("always [madvise] never"))).toMatchObject({ status: "ok" });
    expect(hugePagesCheck(file("[always] madvise never"))).toMatchObject({ status: "ok" });
    const never = hugePagesCheck(file("always madvise [never]"));
    expect(never.status).toBe("warn");
    expect(never.detail).toMatch(/"never".*echo madvise > /);
    expect(hugePagesCheck(join(dir, "no-such-file")).status).toBe("off");
  });
});
