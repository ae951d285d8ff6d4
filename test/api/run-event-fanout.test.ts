/**
 * The runEvents fan-out (src/api/run-event-fanout.ts, platform/events/event-hub.ts): subscribers
 * of one run with the same selection and authority share one execution per event, module
 * filters still apply per subscriber, another project's subscriber is a sharing group of its own
 * and never sees this project's run, and a slow connection ends with RESUBSCRIBE_WITH_AFTER_SEQ
 * without holding up a fast one. Events go out in one pass per event (the fan-out's groups):
 * per-subscriber cursors and filters, a client's `complete` mid-stream, and `complete` after the
 * data still hold. Real server, real tokens, real graphql-ws and ws clients.
 */
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { toGlobalId } from "../../src/api/global-id.ts";
import { RESUBSCRIBE_CODE } from "../../src/api/run-event-fanout.ts";
import type { ApiServer } from "../../src/api/server.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import type { NewRunEvent } from "../../src/platform/events/run-event.ts";
import { startTestApiServer } from "../helpers/api-server.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent, runFinished } from "../helpers/events.ts";
import { collectSubscription, wsClient } from "../helpers/graphql.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
let server: ApiServer;
let viewer: string;

beforeAll(async () => {
  // One token plays many viewers here (a connect storm): lift its connection limit.
  server = await startTestApiServer(t, {
    limits: { maxQueuedEventsPerSubscription: 1_000, maxWsConnectionsPerToken: 1_000 },
  });
  viewer = await mintToken(t.db, "VIEWER");
});
afterAll(async () => {
  await server?.close();
});

const SUBSCRIPTION = `subscription ($runId: ID!, $afterSeq: Int, $moduleIndex: Int) {
  runEvents(runId: $runId, afterSeq: $afterSeq, moduleIndex: $moduleIndex) {
    seq type moduleIndex ... on TrainingProgress { step } ... on LogMessage { message }
  }
}`;

interface EventMessage {
  runEvents: { seq: number; type: string; moduleIndex: number | null; step?: number; message?: string };
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const seqs = (results: { data?: EventMessage | null }[]) => results.map((r) => r.data?.runEvents.seq);

describe("runEvents fan-out", () => {
  it("executes each live event once for all subscribers of a selection; module filters stay per subscriber", async () => {
    const { run } = await createRunRows(t.db);
    const runId = toGlobalId("Run", run.id);
    const clients: Client[] = [];
    const streams = [];
    for (let i = 0; i < 20; i++) {
      const client = wsClient(server.wsUrl, { token: viewer });
      clients.push(client);
      const moduleIndex = i % 4 === 0 ? 1 : null; // every fourth watches module 1 only
      streams.push({
        moduleIndex,
        done: collectSubscription<EventMessage>(client, SUBSCRIPTION, { runId, moduleIndex }),
      });
    }
    try {
      await until(() => server.eventStats().subscribers === 20, "20 live subscribers");
      const before = server.eventStats().fanout.executions;
      for (let step = 1; step <= 12; step++)
        await appendRunEvents(t.db, run.id, [progressEvent(step % 3, step)]);
      await appendRunEvents(t.db, run.id, [runFinished]);
      for (const stream of streams) {
        const { results, error } = await stream.done;
        expect(error).toBeUndefined();
        if (stream.moduleIndex === 1) {
          expect(seqs(results)).toEqual([1, 4, 7, 10, 13]);
          expect(results.at(-1)?.data?.runEvents.type).toBe("RUN_STATE");
        } else {
          expect(seqs(results)).toEqual(Array.from({ length: 13 }, (_, i) => i + 1));
          expect(results.map((r) => r.data?.runEvents.step ?? null).slice(0, 3)).toEqual([1, 2, 3]);
        }
      }
      // 13 events, one selection, one authority: 13 executions for 20 subscribers.
      expect(server.eventStats().fanout.executions - before).toBe(13);
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it("a connect storm replaying from afterSeq 0 shares its reads; each subscriber still gets every event once, in order", async () => {
    const { run } = await createRunRows(t.db);
    const runId = toGlobalId("Run", run.id);
    for (let step = 1; step <= 30; step++) await appendRunEvents(t.db, run.id, [progressEvent(0, step)]);
    const replayReadsBefore = server.eventStats().hub.replayReads;
    const clients: Client[] = [];
    const streams: ReturnType<typeof collectSubscription<EventMessage>>[] = [];
    const join = (n: number) => {
      for (let i = 0; i < n; i++) {
        const client = wsClient(server.wsUrl, { token: viewer });
        clients.push(client);
        streams.push(collectSubscription<EventMessage>(client, SUBSCRIPTION, { runId, afterSeq: 0 }));
      }
    };
    try {
      const subscribersBefore = server.eventStats().subscribers;
      join(40);
      await until(() => server.eventStats().subscribers === subscribersBefore + 40, "40 live subscribers");
      // 40 subscribers from one seq: a handful of table reads, not one each.
      expect(server.eventStats().hub.replayReads - replayReadsBefore).toBeLessThan(10);
      // More join while events arrive: a page shared from before one joined must not hide rows
      // the hub read before it joined.
      join(20);
      for (let step = 31; step <= 45; step++) {
        await appendRunEvents(t.db, run.id, [progressEvent(0, step)]);
        await new Promise((r) => setTimeout(r, 10));
      }
      await appendRunEvents(t.db, run.id, [runFinished]);
      for (const stream of streams) {
        const { results, error } = await stream;
        expect(error).toBeUndefined();
        expect(seqs(results)).toEqual(Array.from({ length: 46 }, (_, i) => i + 1));
      }
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it("shares only within one authority: a project-scoped token executes apart and sees only its project", async () => {
    const [projectA, projectB] = await Promise.all(
      ["fanout-a", "fanout-b"].map((name) => t.db.project.create({ data: { name } })),
    );
    const { run: runA } = await createRunRows(t.db, { run: { projectId: projectA!.id } });
    const { run: runB } = await createRunRows(t.db, { run: { projectId: projectB!.id } });
    const onlyA = await mintToken(t.db, "VIEWER", { projects: [projectA!.id] });
    const onlyB = await mintToken(t.db, "VIEWER", { projects: [projectB!.id] });
    const all = wsClient(server.wsUrl, { token: viewer });
    const a = wsClient(server.wsUrl, { token: onlyA });
    const b = wsClient(server.wsUrl, { token: onlyB });
    try {
      // B's token cannot open A's run: as if it did not exist.
      const refused = await collectSubscription(b, SUBSCRIPTION, { runId: toGlobalId("Run", runA.id) });
      const errors =
        (refused.error as { extensions?: { code?: string } }[] | undefined) ?? refused.results[0]?.errors;
      expect(errors?.[0]?.extensions?.code).toBe("NOT_FOUND");

      const streamAll = collectSubscription<EventMessage>(all, SUBSCRIPTION, {
        runId: toGlobalId("Run", runA.id),
      });
      const streamA = collectSubscription<EventMessage>(a, SUBSCRIPTION, {
        runId: toGlobalId("Run", runA.id),
      });
      const streamB = collectSubscription<EventMessage>(b, SUBSCRIPTION, {
        runId: toGlobalId("Run", runB.id),
      });
      await until(() => server.eventStats().subscribers === 3, "three live subscribers");
      const before = server.eventStats().fanout.executions;
      for (let step = 1; step <= 5; step++) {
        await appendRunEvents(t.db, runA.id, [progressEvent(0, step)]);
        await appendRunEvents(t.db, runB.id, [{ type: "LOG", level: "INFO", message: `b-${step}` }]);
      }
      await appendRunEvents(t.db, runA.id, [runFinished]);
      await appendRunEvents(t.db, runB.id, [runFinished]);
      const [resultAll, resultA, resultB] = await Promise.all([streamAll, streamA, streamB]);
      expect(seqs(resultAll.results)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(seqs(resultA.results)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(resultA.results.every((r) => r.data?.runEvents.message === undefined)).toBe(true);
      expect(resultB.results.map((r) => r.data?.runEvents.message ?? r.data?.runEvents.type)).toEqual([
        "b-1",
        "b-2",
        "b-3",
        "b-4",
        "b-5",
        "RUN_STATE",
      ]);
      // Run A: two authorities (all projects, project A) → 2 × 6; run B: 6.
      expect(server.eventStats().fanout.executions - before).toBe(18);
    } finally {
      await Promise.all([all.dispose(), a.dispose(), b.dispose()]);
    }
  });

  it("written in one pass: subscribers with different moduleIndex filters and afterSeq cursors each get exactly their events, in order", async () => {
    const { run } = await createRunRows(t.db);
    const runId = toGlobalId("Run", run.id);
    // Ten events before anyone subscribes (replayed from each cursor), then live ones.
    const modules: (number | null)[] = [];
    for (let step = 1; step <= 10; step++) {
      modules.push(step % 3);
      await appendRunEvents(t.db, run.id, [progressEvent(step % 3, step)]);
    }
    const cases: { moduleIndex: number | null; afterSeq: number }[] = [];
    for (const moduleIndex of [null, 0, 1, 2])
      for (const afterSeq of [0, 4, 10]) cases.push({ moduleIndex, afterSeq });
    const clients: Client[] = [];
    const subscribersBefore = server.eventStats().subscribers;
    const before = server.eventStats().fanout;
    const [executionsBefore, directBefore] = [before.executions, before.directDeliveries];
    const streams = cases.map((c) => {
      const client = wsClient(server.wsUrl, { token: viewer });
      clients.push(client);
      return collectSubscription<EventMessage>(client, SUBSCRIPTION, { runId, ...c });
    });
    try {
      await until(
        () => server.eventStats().subscribers === subscribersBefore + cases.length,
        `${cases.length} live subscribers`,
      );
      // Live events in batches of several rows (one hub read, one pass per event), modules mixed.
      for (let step = 11; step <= 40; step += 3) {
        const batch = [step, step + 1, step + 2].map((s) => {
          modules.push(s % 3);
          return progressEvent(s % 3, s);
        });
        await appendRunEvents(t.db, run.id, batch);
      }
      await appendRunEvents(t.db, run.id, [runFinished]);
      const terminalSeq = modules.length + 1;
      let expectedDeliveries = 0;
      for (const [i, stream] of streams.entries()) {
        const { moduleIndex, afterSeq } = cases[i]!;
        const { results, error } = await stream;
        expect(error).toBeUndefined();
        const expected = [
          ...modules
            .map((m, k) => ({ seq: k + 1, m }))
            .filter(({ seq, m }) => seq > afterSeq && (moduleIndex === null || m === moduleIndex))
            .map(({ seq }) => seq),
          terminalSeq, // the terminal event reaches every filter, then `complete`
        ];
        expect(seqs(results), `moduleIndex ${moduleIndex}, afterSeq ${afterSeq}`).toEqual(expected);
        expect(results.at(-1)?.data?.runEvents.type).toBe("RUN_STATE");
        expectedDeliveries += expected.length;
      }
      const after = server.eventStats().fanout;
      // Every delivery went out in a group's pass, none through graphql-ws's per-subscription loop.
      expect(after.directDeliveries - directBefore).toBe(expectedDeliveries);
      // Executions per event, not per subscriber: each live event once (31) and each replay page's
      // rows once (pages from seq 0 and 4: 10 + 6; a page re-read under load adds its rows again).
      expect(after.executions - executionsBefore).toBeGreaterThanOrEqual(31 + 16);
      expect(after.executions - executionsBefore).toBeLessThan(expectedDeliveries / 3);
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it("a subscription completed mid-stream gets nothing after its complete; another on the same socket goes on", async () => {
    const { run } = await createRunRows(t.db);
    const runId = toGlobalId("Run", run.id);
    const socket = new WebSocket(server.wsUrl, "graphql-transport-ws");
    const messages: { id?: string; type: string; payload?: { data?: EventMessage } }[] = [];
    socket.on("message", (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${viewer}` } }));
    await until(() => messages.some((m) => m.type === "connection_ack"), "connection_ack");
    const subscribersBefore = server.eventStats().subscribers;
    for (const id of ["leaves", "stays"])
      socket.send(
        JSON.stringify({ id, type: "subscribe", payload: { query: SUBSCRIPTION, variables: { runId } } }),
      );
    const seqsOf = (id: string) =>
      messages.filter((m) => m.id === id && m.type === "next").map((m) => m.payload?.data?.runEvents.seq);
    try {
      await until(() => server.eventStats().subscribers === subscribersBefore + 2, "two live subscribers");
      for (let step = 1; step <= 5; step++) await appendRunEvents(t.db, run.id, [progressEvent(0, step)]);
      await until(() => seqsOf("leaves").length === 5 && seqsOf("stays").length === 5, "five events each");
      socket.send(JSON.stringify({ id: "leaves", type: "complete" }));
      await until(() => server.eventStats().subscribers === subscribersBefore + 1, "the completed one gone");
      for (let step = 6; step <= 10; step++) await appendRunEvents(t.db, run.id, [progressEvent(0, step)]);
      await appendRunEvents(t.db, run.id, [runFinished]);
      await until(() => messages.some((m) => m.id === "stays" && m.type === "complete"), "the other's end");
      expect(seqsOf("stays")).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
      expect(seqsOf("leaves")).toEqual([1, 2, 3, 4, 5]);
      // The client ended it: the server sends no `complete` of its own, nor anything else for it.
      expect(messages.filter((m) => m.id === "leaves").map((m) => m.type)).toEqual(Array(5).fill("next"));
      // `complete` follows the data: the terminal event is the last `next` before it.
      const stays = messages.filter((m) => m.id === "stays").map((m) => m.type);
      expect(stays.at(-1)).toBe("complete");
      expect(stays.slice(0, -1).every((type) => type === "next")).toBe(true);
    } finally {
      socket.terminate();
    }
  });

  it("a connection that stops reading is cut off with RESUBSCRIBE_WITH_AFTER_SEQ; others are not held up", async () => {
    const { run } = await createRunRows(t.db);
    const runId = toGlobalId("Run", run.id);
    // A slow consumer: a raw graphql-transport-ws client that stops reading its socket.
    const slow = new WebSocket(server.wsUrl, "graphql-transport-ws");
    const slowMessages: { type: string; payload?: unknown }[] = [];
    slow.on("message", (data) => slowMessages.push(JSON.parse(String(data))));
    await new Promise((resolve) => slow.once("open", resolve));
    slow.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${viewer}` } }));
    await until(() => slowMessages.some((m) => m.type === "connection_ack"), "connection_ack");
    slow.send(
      JSON.stringify({ id: "1", type: "subscribe", payload: { query: SUBSCRIPTION, variables: { runId } } }),
    );
    const fast = wsClient(server.wsUrl, { token: viewer });
    const fastStream = collectSubscription<EventMessage>(fast, SUBSCRIPTION, { runId });
    try {
      await until(() => server.eventStats().subscribers === 2, "two live subscribers");
      slow.pause(); // stop reading: the kernel buffers fill, then the server's writes wait
      const behindBefore = server.eventStats().fanout.behind;

      // 2,500 events of 4 KiB: far more than the socket buffers and the 1,000-event queue hold.
      const padding = "x".repeat(4096);
      const TOTAL = 2_500;
      for (let first = 1; first <= TOTAL; first += 100) {
        const batch: NewRunEvent[] = Array.from({ length: 100 }, (_, i) => ({
          type: "LOG",
          level: "INFO",
          message: `${first + i} ${padding}`,
        }));
        await appendRunEvents(t.db, run.id, batch);
      }
      await appendRunEvents(t.db, run.id, [runFinished]);
      const fastResult = await fastStream; // the fast one finishes while the slow one still stalls
      expect(fastResult.error).toBeUndefined();
      expect(server.eventStats().fanout.behind - behindBefore).toBe(1);
      expect(seqs(fastResult.results)).toEqual(Array.from({ length: TOTAL + 1 }, (_, i) => i + 1));

      slow.resume();
      await until(
        () => slowMessages.some((m) => m.type === "error" || m.type === "complete"),
        "the slow end",
      );
      const end = slowMessages.find((m) => m.type === "error") as {
        payload: { message: string; extensions: { code: string; resumeAfterSeq: number } }[];
      };
      expect(end).toBeDefined();
      expect(end.payload[0]?.extensions.code).toBe(RESUBSCRIBE_CODE);
      expect(end.payload[0]?.message).toMatch(/resubscribe with afterSeq/);
      const received = slowMessages
        .filter((m) => m.type === "next")
        .map((m) => (m.payload as { data: EventMessage }).data.runEvents.seq);
      expect(received).toEqual(Array.from({ length: received.length }, (_, i) => i + 1));
      expect(received.length).toBeLessThan(TOTAL);
      // The resume point is the last event that reached the client; resuming there gets the
      // rest, once each.
      expect(end.payload[0]!.extensions.resumeAfterSeq).toBe(received.at(-1));
      const again = wsClient(server.wsUrl, { token: viewer });
      try {
        const rest = await collectSubscription<EventMessage>(again, SUBSCRIPTION, {
          runId,
          afterSeq: end.payload[0]!.extensions.resumeAfterSeq,
        });
        expect([...received, ...seqs(rest.results)]).toEqual(
          Array.from({ length: TOTAL + 1 }, (_, i) => i + 1),
        );
      } finally {
        await again.dispose();
      }
    } finally {
      slow.terminate();
      await fast.dispose();
    }
  }, 240_000);
});
