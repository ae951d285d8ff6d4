import { describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import { appendRunEvents, readRunEvents } from "../../src/platform/events/event-log.ts";
import { useViewerApiServer } from "../helpers/api-server.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent, runFinished } from "../helpers/events.ts";
import { collectSubscription, wsClient } from "../helpers/graphql.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
const server = useViewerApiServer(t);

async function newRun(): Promise<string> {
  return (await createRunRows(t.db)).run.id;
}

const progress = progressEvent;
const finished = runFinished;

const SUBSCRIPTION = `subscription ($runId: ID!, $afterSeq: Int, $moduleIndex: Int) {
  runEvents(runId: $runId, afterSeq: $afterSeq, moduleIndex: $moduleIndex) {
    seq type moduleIndex ... on TrainingProgress { step } ... on RunStateChanged { state }
  }
}`;

interface EventMessage {
  runEvents: { seq: number; type: string; moduleIndex: number | null; step?: number; state?: string };
}

describe("the run event log", () => {
  it("numbers events densely per run, also under concurrent writers", async () => {
    const runId = await newRun();
    await Promise.all(
      [0, 1, 2, 3].map(async (m) => {
        for (let step = 1; step <= 10; step++) await appendRunEvents(t.db, runId, [progress(m, step)]);
      }),
    );
    const rows = await readRunEvents(t.db, runId, 0);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (const m of [0, 1, 2, 3]) {
      const steps = rows
        .filter((r) => r.moduleIndex === m)
        .map((r) => (r.type === "PROGRESS" ? r.step : null));
      expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
  });
});

describe("runEvents subscription", () => {
  it("replays the log after afterSeq, then streams live events, and completes on the final state", async () => {
    const runId = await newRun();
    await appendRunEvents(t.db, runId, [progress(0, 1), progress(1, 1), progress(0, 2)]);
    const client = wsClient(server.wsUrl);
    try {
      const stream = collectSubscription<EventMessage>(client, SUBSCRIPTION, {
        runId: toGlobalId("Run", runId),
        afterSeq: 1,
      });
      await new Promise((r) => setTimeout(r, 200));
      for (let step = 3; step <= 6; step++) await appendRunEvents(t.db, runId, [progress(step % 2, step)]);
      await appendRunEvents(t.db, runId, [finished]);
      const { results, error } = await stream;
      expect(error).toBeUndefined();
      expect(results.map((r) => r.data?.runEvents.seq)).toEqual([2, 3, 4, 5, 6, 7, 8]);
      expect(results.at(-1)?.data?.runEvents).toMatchObject({
        type: "RUN_STATE",
        moduleIndex: null,
        state: "SUCCEEDED",
      });
    } finally {
      await client.dispose();
    }
  });

  it("filters to one module but still ends with the run's final state", async () => {
    const runId = await newRun();
    await appendRunEvents(t.db, runId, [
      progress(0, 1),
      progress(1, 1),
      progress(2, 1),
      progress(1, 2),
      finished,
    ]);
    const client = wsClient(server.wsUrl);
    try {
      const { results } = await collectSubscription<EventMessage>(client, SUBSCRIPTION, {
        runId: toGlobalId("Run", runId),
        moduleIndex: 1,
      });
      expect(results.map((r) => [r.data?.runEvents.seq, r.data?.runEvents.moduleIndex])).toEqual([
        [2, 1],
        [4, 1],
        [5, null],
      ]);
    } finally {
      await client.dispose();
    }
  });

  it("a client that drops and resubscribes with its last seq misses nothing and sees nothing twice", async () => {
    const runId = await newRun();
    const writer = (async () => {
      for (let step = 1; step <= 60; step++) {
        await appendRunEvents(t.db, runId, [progress(step % 4, step)]);
        await new Promise((r) => setTimeout(r, 5));
      }
      await appendRunEvents(t.db, runId, [finished]);
    })();
    const seen: number[] = [];
    // First connection: take some events, then drop the socket mid-run.
    const first = wsClient(server.wsUrl);
    await new Promise<void>((resolve) => {
      const unsubscribe = first.subscribe<EventMessage>(
        { query: SUBSCRIPTION, variables: { runId: toGlobalId("Run", runId) } },
        {
          next: (message) => {
            seen.push(message.data!.runEvents.seq);
            if (seen.length === 15) {
              unsubscribe();
              resolve();
            }
          },
          error: () => resolve(),
          complete: () => resolve(),
        },
      );
    });
    await first.dispose();
    await new Promise((r) => setTimeout(r, 100)); // events keep coming while we are away
    const second = wsClient(server.wsUrl);
    try {
      const { results } = await collectSubscription<EventMessage>(second, SUBSCRIPTION, {
        runId: toGlobalId("Run", runId),
        afterSeq: seen.at(-1),
      });
      seen.push(...results.map((r) => r.data!.runEvents.seq));
    } finally {
      await second.dispose();
    }
    await writer;
    const table = (await readRunEvents(t.db, runId, 0)).map((r) => r.seq);
    expect(table).toHaveLength(61);
    expect(seen).toEqual(table);
  });

  it("refuses an ID of the wrong type with a message naming runId", async () => {
    const client = wsClient(server.wsUrl);
    try {
      const { results, error } = await collectSubscription(client, SUBSCRIPTION, {
        runId: toGlobalId("Module", "00000000-0000-0000-0000-000000000000"),
      });
      const errors = (error as { message: string }[] | undefined) ?? results[0]?.errors;
      expect(JSON.stringify(errors)).toMatch(/runId: .* is not the ID of a Run/);
    } finally {
      await client.dispose();
    }
  });
});
