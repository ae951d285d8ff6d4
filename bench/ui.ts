/**
 * `incubator bench ui`: the dashboard's weight and time to first render in headless Chromium,
 * on a run seeded straight into the database with 64 modules and 10,000 events (no training).
 *
 * Each pair: A = a cold load in a fresh browser profile (nothing cached, no saved events: the
 * page replays all 10,000 events over the runEvents subscription); B = a reload of that page
 * (assets from the HTTP cache, events resumed from the saved fold with afterSeq). Reported per
 * load: bytes transferred (HTTP: page and assets, GraphQL responses; WebSocket frames), time
 * from navigation start to the run's first render (header and 64 module rows), and to the
 * whole log applied and drawn; DOM elements on the page. Everything on loopback.
 */
import pino from "pino";
import type { Page } from "playwright-core";
import { toGlobalId } from "../src/api/global-id.ts";
import { startApiServer } from "../src/api/server.ts";
import type { Db } from "../src/platform/db/client.ts";
import { appendRunEvents } from "../src/platform/events/event-log.ts";
import type { NewRunEvent } from "../src/platform/events/run-event.ts";
import { buildDashboard, launchChromium } from "../test/helpers/browser.ts";
import { createRunRows } from "../test/helpers/rows.ts";
import { openBenchDatabase } from "./scratch-database.ts";

export interface DashboardLoad {
  kind: "cold" | "reload";
  /** HTTP bytes on the wire (encoded, headers included): page, scripts, styles, GraphQL. */
  httpBytes: number;
  /** Of those, the page and its assets. */
  assetBytes: number;
  /** WebSocket frames received (the event replay or resume). */
  wsBytes: number;
  requests: number;
  /** Navigation start → the run's header and every module row on screen. */
  firstRenderMs: number;
  /** Navigation start → every event applied and drawn (data-last-seq = the log's last seq). */
  allEventsMs: number;
  domElements: number;
}

const MODULES = 64;

// What the page-side functions below use of the DOM (they run in Chromium; this file is compiled
// for Node, without the DOM's types).
declare const document: {
  querySelectorAll(selector: string): { length: number };
  querySelector(selector: string): { getAttribute(name: string): string | null } | null;
  getElementsByTagName(name: string): { length: number };
};

/** A RUNNING incubation run: PT done, 64 modules training, `events` events in its log. */
async function seedRun(db: Db, events: number): Promise<{ runId: string; lastSeq: number }> {
  const t0 = Date.now() - 3_600_000;
  const at = (s: number) => new Date(t0 + s * 1000);
  const { run } = await createRunRows(db, {
    name: `bench-ui-${Date.now()}`,
    architecture: { depth: MODULES, moduleSplit: Array(MODULES).fill(1) },
    run: { state: "RUNNING", startedAt: at(0) },
    modules: true,
  });
  const modules = await db.module.findMany({ where: { runId: run.id }, orderBy: { index: "asc" } });
  const pt = await db.job.create({
    data: {
      runId: run.id,
      stage: "PRETRAIN",
      state: "SUCCEEDED",
      attempts: 1,
      workerId: "w0",
      startedAt: at(0),
      finishedAt: at(600),
    },
  });
  const mt = await Promise.all(
    modules.map((m) =>
      db.job.create({
        data: {
          runId: run.id,
          moduleId: m.id,
          stage: "MODULAR",
          state: "RUNNING",
          attempts: 1,
          workerId: `w${m.index % 8}`,
          startedAt: at(600 + m.index * 5),
        },
      }),
    ),
  );
  const log: NewRunEvent[] = [
    { type: "RUN_STATE", moduleIndex: null, state: "RUNNING" },
    {
      type: "JOB_STATE",
      moduleIndex: null,
      jobId: pt.id,
      stage: "PRETRAIN",
      state: "RUNNING",
      attempt: 1,
      workerId: "w0",
    },
  ] as NewRunEvent[];
  const progress = (moduleIndex: number | null, stage: "PRETRAIN" | "MODULAR", step: number, total: number) =>
    ({
      type: "PROGRESS",
      moduleIndex,
      stage,
      step,
      totalSteps: total,
      loss: 2.3 * Math.exp(-step / total) + 0.05 * Math.sin(step),
      lr: 1e-3 * Math.min(1, step / 50),
      imagesPerSecond: 500,
      etaSeconds: total - step,
    }) as NewRunEvent;
  for (let s = 1; s <= 200; s++) log.push(progress(null, "PRETRAIN", s * 5, 1000));
  log.push({
    type: "JOB_STATE",
    moduleIndex: null,
    jobId: pt.id,
    stage: "PRETRAIN",
    state: "SUCCEEDED",
  } as NewRunEvent);
  for (const [i, job] of mt.entries()) {
    log.push({
      type: "JOB_STATE",
      moduleIndex: i,
      jobId: job.id,
      stage: "MODULAR",
      state: "RUNNING",
      attempt: 1,
      workerId: `w${i % 8}`,
    } as NewRunEvent);
    log.push({ type: "MODULE_STATE", moduleIndex: i, state: "RUNNING", retry: false } as NewRunEvent);
  }
  const perModule = Math.floor((events - log.length) / MODULES);
  for (let k = 1; k <= perModule; k++)
    for (let i = 0; i < MODULES; i++) log.push(progress(i, "MODULAR", k * 4, 1000));
  for (let i = 0; log.length < events; i++)
    log.push({ type: "LOG", moduleIndex: null, level: "INFO", message: `note ${i}` } as NewRunEvent);
  let lastSeq = 0;
  for (let i = 0; i < log.length; i += 1000)
    lastSeq = (await appendRunEvents(db, run.id, log.slice(i, i + 1000))).at(-1)!;
  await db.module.updateMany({
    where: { runId: run.id },
    data: { state: "RUNNING", step: perModule * 4, totalSteps: 1000 },
  });
  return { runId: toGlobalId("Run", run.id), lastSeq };
}

/** Counts bytes through the DevTools protocol while `load` runs. */
async function measureLoad(
  page: Page,
  kind: DashboardLoad["kind"],
  load: () => Promise<unknown>,
  lastSeq: number,
) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const urls = new Map<string, string>();
  let httpBytes = 0;
  let assetBytes = 0;
  let wsBytes = 0;
  let requests = 0;
  cdp.on("Network.requestWillBeSent", (e) => urls.set(e.requestId, e.request.url));
  cdp.on("Network.loadingFinished", (e) => {
    requests++;
    httpBytes += e.encodedDataLength;
    if (/\/ui\//.test(urls.get(e.requestId) ?? "")) assetBytes += e.encodedDataLength;
  });
  cdp.on("Network.webSocketFrameReceived", (e) => {
    wsBytes += e.response.payloadData.length;
  });
  await load();
  // The page's own clock: both times count from its navigation start.
  const firstRenderMs = await page
    .waitForFunction(
      (n) => document.querySelectorAll("table.modules tbody tr").length === n && performance.now(),
      MODULES,
      { polling: "raf", timeout: 120_000 },
    )
    .then((h) => h.jsonValue() as Promise<number>);
  const allEventsMs = await page
    .waitForFunction(
      (seq) =>
        document.querySelector("section.run")?.getAttribute("data-last-seq") === seq && performance.now(),
      String(lastSeq),
      { polling: "raf", timeout: 300_000 },
    )
    .then((h) => h.jsonValue() as Promise<number>);
  await page.waitForTimeout(300); // let the last GraphQL answers land before counting
  const domElements = await page.evaluate(() => document.getElementsByTagName("*").length);
  await cdp.detach();
  return {
    kind,
    httpBytes,
    assetBytes,
    wsBytes,
    requests,
    firstRenderMs,
    allEventsMs,
    domElements,
  } satisfies DashboardLoad;
}

export async function measureDashboard(o: { pairs: number; events: number; dataDir: string }) {
  buildDashboard();
  const scratch = await openBenchDatabase(o.dataDir, "incubator_bench_ui");
  const db = scratch.db;
  const api = await startApiServer({
    db,
    databaseUrl: scratch.url,
    logger: pino({ level: "silent" }),
    port: 0,
    host: "127.0.0.1",
    auth: "local", // loopback, tokenless: the page needs no settings
  });
  const loads: DashboardLoad[] = [];
  try {
    const { runId, lastSeq } = await seedRun(db, o.events);
    const url = `${api.dashboardUrl}#/runs/${encodeURIComponent(runId)}`;
    for (let i = 0; i < o.pairs; i++) {
      const browser = await launchChromium(); // a fresh profile: empty cache and sessionStorage
      try {
        const page = await browser.context.newPage();
        loads.push(await measureLoad(page, "cold", () => page.goto(url), lastSeq));
        await page.waitForTimeout(1500); // the fold is saved once a second
        loads.push(await measureLoad(page, "reload", () => page.reload(), lastSeq));
      } finally {
        await browser.close();
      }
    }
    return { events: lastSeq, modules: MODULES, loads };
  } finally {
    await api.close();
    await scratch.close();
  }
}
