/** Which errors a worker waits out (a database or API outage) and which it reports at once. */
import { describe, expect, it } from "vitest";
import { JobNotHeldError } from "../../src/platform/worker/job-lifecycle.ts";
import { isTransient, untilAnswered } from "../../src/platform/worker/transient.ts";

describe("untilAnswered", () => {
  it("retries through connection failures and returns the answer", async () => {
    let calls = 0;
    const answer = await untilAnswered(async () => {
      calls++;
      if (calls === 1) throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), {});
      if (calls === 2) throw Object.assign(new Error("Can't reach database server"), { code: "P1001" });
      return "done";
    });
    expect([answer, calls]).toEqual(["done", 3]);
  });

  it("throws other errors at once", async () => {
    let calls = 0;
    await expect(
      untilAnswered(async () => {
        calls++;
        throw new JobNotHeldError("job j was taken over");
      }),
    ).rejects.toThrow(JobNotHeldError);
    expect(calls).toBe(1);
  });

  it("gives up after its deadline", async () => {
    await expect(
      untilAnswered(
        async () => {
          throw new Error("fetch failed");
        },
        { giveUpAfterMs: 600 },
      ),
    ).rejects.toThrow("fetch failed");
  });

  it("knows the API backend's own messages", () => {
    expect(isTransient(new Error("cannot reach the API at http://a/graphql: fetch failed"))).toBe(true);
    expect(isTransient(new Error("the API at http://a answered HTTP 503 without data"))).toBe(true);
    expect(isTransient(new Error("input.events.0.step: Invalid input"))).toBe(false);
  });
});
