/**
 * The metrics module's own rules, without a server: job wait and run times from a transition's
 * before/after rows, and the bound on GraphQL operation names.
 */
import { describe, expect, it } from "vitest";
import {
  ANONYMOUS_OPERATION,
  MAX_NAME_LENGTH,
  MAX_OPERATION_NAMES,
  OTHER_OPERATION,
  operationLabel,
} from "../../src/platform/metrics/graphql-requests.ts";
import { type JobBefore, recordJobChanges } from "../../src/platform/metrics/job-timings.ts";
import { registry } from "../../src/platform/metrics/metrics.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus.ts";

const samples = async () => parsePrometheusText(await registry.metrics());

describe("job timings", () => {
  const t0 = new Date("2026-12-01T10:00:00Z");
  const at = (s: number) => new Date(t0.getTime() + s * 1000);
  const job = (id: string, o: Partial<JobBefore>): JobBefore => ({
    id,
    stage: "MODULAR",
    state: "QUEUED",
    createdAt: t0,
    startedAt: null,
    ...o,
  });

  it("observes a first claim's wait and an attempt's run time with its outcome", async () => {
    recordJobChanges(
      [
        job("a", {}),
        job("b", { stage: "FINETUNE", state: "RUNNING", startedAt: at(10) }),
        job("c", { state: "RUNNING", startedAt: at(40) }),
        // A retry's claim: its wait includes the backoff, so it is not a queue wait.
        job("d", {}),
        job("e", { state: "SUCCEEDED", startedAt: at(1) }),
      ],
      [
        { id: "a", state: "RUNNING", attempt: 1 },
        { id: "b", state: "SUCCEEDED" },
        { id: "c", state: "QUEUED" },
        { id: "d", state: "RUNNING", attempt: 2 },
        { id: "e", state: "SUCCEEDED" }, // not RUNNING before: no attempt ended
        { id: "unknown", state: "RUNNING", attempt: 1 },
      ],
      at(100),
    );
    const s = await samples();
    expect(sampleValue(s, "incubator_job_wait_seconds_count", { stage: "MODULAR" })).toBe(1);
    expect(sampleValue(s, "incubator_job_wait_seconds_sum", { stage: "MODULAR" })).toBe(100);
    expect(sampleValue(s, "incubator_job_wait_seconds_bucket", { stage: "MODULAR", le: "60" })).toBe(0);
    expect(sampleValue(s, "incubator_job_wait_seconds_bucket", { stage: "MODULAR", le: "300" })).toBe(1);
    expect(sampleValue(s, "incubator_job_run_seconds_sum", { stage: "FINETUNE", outcome: "SUCCEEDED" })).toBe(
      90,
    );
    expect(sampleValue(s, "incubator_job_run_seconds_sum", { stage: "MODULAR", outcome: "REQUEUED" })).toBe(
      60,
    );
    expect(
      sampleValue(s, "incubator_job_run_seconds_count", { stage: "MODULAR", outcome: "SUCCEEDED" }),
    ).toBe(undefined);
  });
});

describe("GraphQL operation names as labels", () => {
  it("collapse anonymous, unresolved, over-long and past-the-cap names to fixed values", () => {
    expect(operationLabel(null, true)).toBe(ANONYMOUS_OPERATION);
    expect(operationLabel("Anything", false)).toBe(OTHER_OPERATION);
    expect(operationLabel("x".repeat(MAX_NAME_LENGTH + 1), true)).toBe(OTHER_OPERATION);
    expect(operationLabel("not a name", true)).toBe(OTHER_OPERATION);
    expect(operationLabel("Kept", true)).toBe("Kept");
    for (let i = 0; i < MAX_OPERATION_NAMES * 2; i++) operationLabel(`Op${i}`, true);
    expect(operationLabel("Kept", true)).toBe("Kept"); // names seen before the cap stay
    expect(operationLabel(`Op${MAX_OPERATION_NAMES - 2}`, true)).toBe(`Op${MAX_OPERATION_NAMES - 2}`);
    expect(operationLabel(`Op${MAX_OPERATION_NAMES}`, true)).toBe(OTHER_OPERATION);
    expect(operationLabel("Fresh", true)).toBe(OTHER_OPERATION);
  });
});
