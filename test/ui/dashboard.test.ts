/**
 * The web dashboard in headless Chromium against a real platform (API, queue, two local
 * workers, real token typed into the page's settings): start runs from the page's form, watch
 * module rows, the loss curve and the held-out accuracy curve grow, reload mid-run and find every
 * progress event exactly once in the chart (compared with the API's event log), cancel a run
 * from the page. Screenshots
 * go to test-artifacts/ui/.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { artifactPath, buildDashboard, chromiumMissing, launchChromium } from "../helpers/browser.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { createTinyArchitectureAndDataset, tinyOverrides } from "../helpers/tiny-run.ts";

// CI installs Chromium (.ci/run) and must run these; elsewhere a machine without it skips them, saying why.
const missing = chromiumMissing();
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`test/ui/dashboard.test.ts skipped: ${missing}`);

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-ui-"));
let local: LocalPlatform & { token: string };
let browser: Awaited<ReturnType<typeof launchChromium>>;
let context: BrowserContext;
const cspViolations: string[] = [];

function watch(page: Page): Page {
  page.on("console", (m) => {
    if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  return page;
}

/** Every PROGRESS seq of the run in the API's log (run.events, paged), up to `upTo`. */
async function apiProgressSeqs(runId: string, upTo = Number.MAX_SAFE_INTEGER): Promise<number[]> {
  const seqs: number[] = [];
  let after = 0;
  for (;;) {
    const res = await postGraphQL<{
      run: { events: { nodes: { seq: number; type: string }[]; pageInfo: { hasNextPage: boolean } } };
    }>(
      local.api.url,
      `query ($id: ID!, $after: Int!) { run(id: $id) { events(afterSeq: $after, first: 100) { nodes { seq type } pageInfo { hasNextPage } } } }`,
      { id: runId, after },
    );
    expect(res.errors).toBeUndefined();
    const page = res.data!.run.events;
    for (const e of page.nodes) if (e.type === "PROGRESS" && e.seq <= upTo) seqs.push(e.seq);
    if (!page.pageInfo.hasNextPage || !page.nodes.length) return seqs;
    after = page.nodes.at(-1)!.seq;
  }
}

/**
 * The page's last applied seq and the seqs its loss chart holds over all series (duplicates
 * kept, to be caught), read in one go so that no render happens between the two.
 */
async function chartState(page: Page): Promise<{ upTo: number; held: number[] }> {
  // A string, evaluated in the page (this file is compiled without the DOM's types).
  return page.evaluate(`(() => {
    const upTo = Number(document.querySelector("section.run").getAttribute("data-last-seq"));
    const held = [...document.querySelectorAll('figure[data-field="loss"] path.series')]
      .flatMap((p) => (p.getAttribute("data-seqs") || "").split(","))
      .filter(Boolean)
      .map(Number);
    return { upTo, held };
  })()`);
}

const lastSeq = async (page: Page) => Number(await page.locator("section.run").getAttribute("data-last-seq"));
const chartPoints = async (page: Page) =>
  Number(await page.locator('figure[data-field="loss"]').getAttribute("data-points"));

async function expectChartMatchesApi(page: Page, runId: string) {
  const { upTo, held } = await chartState(page);
  expect(held.length, "no point twice").toBe(new Set(held).size);
  expect(
    [...held].sort((a, b) => a - b),
    "every progress event up to the page's last seq, no gap",
  ).toEqual(await apiProgressSeqs(runId, upTo));
  return { upTo, points: held.length };
}

/** The run's curve points per line (`run:<stage>` or `module:<i>`, as the page keys them), from the API. */
async function apiCurveLines(runId: string): Promise<Record<string, number>> {
  const res = await postGraphQL<{ run: { accuracyCurve: { stage: string; moduleIndex: number | null }[] } }>(
    local.api.url,
    `query ($id: ID!) { run(id: $id) { accuracyCurve { stage moduleIndex } } }`,
    { id: runId },
  );
  expect(res.errors).toBeUndefined();
  const lines: Record<string, number> = {};
  for (const p of res.data!.run.accuracyCurve) {
    const key = p.stage === "MODULAR" ? `module:${p.moduleIndex}` : `run:${p.stage}`;
    lines[key] = (lines[key] ?? 0) + 1;
  }
  return lines;
}

/** The accuracy chart's lines and their point counts, as the page draws them. */
async function pageCurveLines(page: Page): Promise<Record<string, number>> {
  const paths = page.locator("figure.accuracy-curve path.series");
  const pairs = await paths.evaluateAll((ps) =>
    ps.map((p) => [p.getAttribute("data-key"), Number(p.getAttribute("data-points"))]),
  );
  return Object.fromEntries(pairs);
}

const accuracyPoints = async (page: Page) =>
  Number((await page.locator("[data-accuracy-points]").getAttribute("data-accuracy-points")) ?? 0);

async function startRunFromForm(page: Page, overrides: unknown, split = "ARCHITECTURE"): Promise<string> {
  await page.goto(`${local.api.dashboardUrl}#/start`);
  await page.getByLabel("Architecture").selectOption({ label: "ui-tiny (K = 4)" });
  await page.getByLabel("Module split").selectOption(split);
  await page.getByLabel("Dataset").selectOption({ label: "ui-tiny-data" });
  await page.getByLabel("Recipe overrides (JSON)").fill(JSON.stringify(overrides));
  await page.getByRole("button", { name: "Start run" }).click();
  await page.waitForURL(/#\/runs\/.+/, { timeout: 30_000 });
  return decodeURIComponent(new URL(page.url()).hash.replace("#/runs/", ""));
}

describe.skipIf(missing !== null)("the dashboard", () => {
  beforeAll(async () => {
    buildDashboard();
    local = await startTestPlatform(t, dataDir, { workers: 2, threads: 1 });
    await createTinyArchitectureAndDataset(local.api.url, "ui-tiny", 256);
    browser = await launchChromium();
    context = browser.context;
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await local?.close();
  });

  it("serves the page with a strict CSP and takes a real token in its settings", async () => {
    const response = await fetch(local.api.dashboardUrl);
    expect(response.status).toBe(200);
    const csp = response.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");

    const page = watch(await context.newPage());
    await page.goto(`${local.api.dashboardUrl}#/settings`);
    // Without a token this server (tokens mode) refuses the page's queries, and the page says so.
    await expect.poll(() => page.locator("[data-identity]").getAttribute("data-identity")).toBe("error");
    // The keyboard reaches the skip link first, then the navigation.
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Skip to content");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Runs");
    await page.getByLabel("API token").fill(local.token);
    await page.getByRole("button", { name: "Save token" }).click();
    // Navigating moves the focus to the new view's heading.
    await page.getByRole("link", { name: "Start a run" }).press("Enter");
    await expect
      .poll(() => page.evaluate(`document.activeElement.tagName + ":" + document.activeElement.textContent`))
      .toBe("H1:Start a run");
    await page.getByRole("link", { name: "Settings" }).click();
    await expect.poll(() => page.getByRole("status").textContent()).toMatch(/Connected as token "test-admin/);
    await page.close();
  });

  it("starts a run from the form (userErrors first), follows it to success, with lineage", async () => {
    const page = watch(await context.newPage());
    await page.goto(`${local.api.dashboardUrl}#/start`);
    await page.getByLabel("Architecture").selectOption({ label: "ui-tiny (K = 4)" });
    await page.getByLabel("Recipe overrides (JSON)").fill('{"batchSize": 100000}');
    await page.getByRole("button", { name: "Start run" }).click();
    const error = page.locator(".user-errors li").first();
    await expect.poll(() => error.getAttribute("data-code")).toBe("INVALID");
    expect(await error.textContent()).toContain("batchSize");
    // A planned split on an E2E run: refused on `split`, shown like the other userErrors.
    await page.getByLabel("Recipe overrides (JSON)").fill("");
    await page.getByLabel("Kind").selectOption("E2E");
    await page.getByLabel("Module split").selectOption("BALANCED");
    await page.getByRole("button", { name: "Start run" }).click();
    await expect.poll(() => error.textContent()).toContain("input.split");
    expect(await error.textContent()).toContain("has no modules to plan");
    await page.getByLabel("Kind").selectOption("INCUBATION");
    await page.getByLabel("Module split").selectOption("ARCHITECTURE");

    // BALANCED: the planner's plan is on the run page, then beside what the MT jobs took.
    const runId = await startRunFromForm(
      page,
      { ...tinyOverrides({ pretrain: 20, modular: 40, finetune: 20 }), evalEvery: 10, evalSubset: 24 },
      "BALANCED",
    );
    const rows = page.locator("table.modules tbody tr");
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(4);
    // Modules advance: some row reports steps before the run ends.
    await expect
      .poll(
        async () =>
          Math.max(...(await rows.evaluateAll((tr) => tr.map((r) => Number(r.getAttribute("data-step")))))),
        { timeout: 180_000, interval: 250 },
      )
      .toBeGreaterThan(0);
    await expect
      .poll(() => page.locator("section.run").getAttribute("data-stream"), { timeout: 300_000 })
      .toBe("ended");
    await expect.poll(() => page.locator("h1 .badge").textContent(), { timeout: 30_000 }).toBe("SUCCEEDED");
    const { points } = await expectChartMatchesApi(page, runId);
    expect(points).toBeGreaterThan(0);
    expect(await page.locator("[data-accuracy]").getAttribute("data-accuracy")).toMatch(/^0?\.\d+|^1$/);
    // The accuracy curve: one line per stage and MT job, each with every point the API has.
    const lines = await apiCurveLines(runId);
    expect(Object.keys(lines).sort()).toEqual([
      "module:0",
      "module:1",
      "module:2",
      "module:3",
      "run:FINETUNE",
      "run:PRETRAIN",
    ]);
    await expect.poll(() => pageCurveLines(page), { timeout: 30_000 }).toEqual(lines);
    expect(await accuracyPoints(page)).toBe(Object.values(lines).reduce((a, b) => a + b, 0));
    await page.getByLabel("clock").selectOption("computeSeconds");
    await expect
      .poll(() => page.locator("figure.accuracy-curve").getAttribute("data-clock"))
      .toBe("computeSeconds");
    expect(await pageCurveLines(page)).toEqual(lines);
    const plan = await postGraphQL<{ run: { splitPlan: { measuredSeconds: number[] } } }>(
      local.api.url,
      `query ($id: ID!) { run(id: $id) { splitPlan { measuredSeconds } } }`,
      { id: runId },
    );
    const measured = plan.data!.run.splitPlan.measuredSeconds;
    expect(measured).toHaveLength(4);
    await expect
      .poll(() =>
        page
          .locator("table.split-plan td[data-measured]")
          .evaluateAll((tds) => tds.map((td) => Number(td.getAttribute("data-measured")))),
      )
      .toEqual(measured);
    // Lineage of the final model: every stage, each a download link of an artifact of this run.
    await expect.poll(() => page.locator('[data-node="ONNX export"] a').count(), { timeout: 30_000 }).toBe(1);
    for (const node of ["Meta model", "Module weights", "Assembled", "Fine-tuned"])
      expect(await page.locator(`[data-node="${node}"] a`).count(), node).toBeGreaterThan(0);
    // A module's lineage: the keyboard reaches its button.
    await page.getByRole("button", { name: "Lineage of module 2" }).press("Enter");
    await expect.poll(() => page.locator('[data-node="Checkpoints"] a').count()).toBeGreaterThan(0);
    await page.screenshot({ path: artifactPath("run-succeeded.png"), fullPage: true });

    // A reuse run from the form: a malformed retrain list is refused on the page, then only
    // module 2 trains again and the run takes the others from this one.
    await page.goto(`${local.api.dashboardUrl}#/start`);
    await page.getByLabel("Architecture").selectOption({ label: "ui-tiny (K = 4)" });
    await page.getByLabel("Reuse modules from").selectOption({ value: runId });
    await page.getByLabel("Modules to retrain").fill("two");
    await page.getByRole("button", { name: "Start run" }).click();
    const retrainError = page.locator(".user-errors li").first();
    await expect.poll(() => retrainError.textContent()).toContain("module indexes separated by commas");
    await page.getByLabel("Modules to retrain").fill("2");
    await page
      .getByLabel("Recipe overrides (JSON)")
      .fill(JSON.stringify(tinyOverrides({ modular: 20, finetune: 20 })));
    await page.getByRole("button", { name: "Start run" }).click();
    await page.waitForURL(
      (url) => url.hash.startsWith("#/runs/") && !url.hash.endsWith(encodeURIComponent(runId)),
      {
        timeout: 30_000,
      },
    );
    const reuseId = decodeURIComponent(new URL(page.url()).hash.replace("#/runs/", ""));
    await expect.poll(() => page.locator("h1 .badge").textContent(), { timeout: 240_000 }).toBe("SUCCEEDED");
    const reuse = await postGraphQL<{ node: { reusedFrom: { id: string }; jobs: { stage: string }[] } }>(
      local.api.url,
      `query ($id: ID!) { node(id: $id) { ... on Run { reusedFrom { id } jobs { stage } } } }`,
      { id: reuseId },
    );
    expect(reuse.data!.node.reusedFrom.id).toBe(runId);
    expect(reuse.data!.node.jobs.map((j) => j.stage).sort()).toEqual(["FINETUNE", "MODULAR"]);
    await page.close();
  }, 600_000);

  it("resumes after a reload mid-run without gaps or duplicates, and cancels from the page", async () => {
    const page = watch(await context.newPage());
    const subscribed: number[] = [];
    page.on("websocket", (ws) =>
      ws.on("framesent", ({ payload }) => {
        const m = /"afterSeq":(\d+)/.exec(String(payload));
        if (m) subscribed.push(Number(m[1]));
      }),
    );
    const runId = await startRunFromForm(page, {
      ...tinyOverrides({ pretrain: 20, modular: 100_000, finetune: 20 }),
      evalEvery: 50,
      evalSubset: 16,
    });
    const rows = page.locator("table.modules tbody tr");
    await expect
      .poll(async () => rows.evaluateAll((tr) => tr.some((r) => Number(r.getAttribute("data-step")) > 0)), {
        timeout: 240_000,
        interval: 250,
      })
      .toBe(true);
    // The loss curve gains points while modules train.
    const before = await chartPoints(page);
    await expect.poll(() => chartPoints(page), { timeout: 60_000 }).toBeGreaterThan(before);
    // So does the accuracy curve, as EVAL_POINT events arrive: the page matches the API's curve.
    const accuracyBefore = await accuracyPoints(page);
    await expect.poll(() => accuracyPoints(page), { timeout: 60_000 }).toBeGreaterThan(accuracyBefore);
    const seen = await pageCurveLines(page);
    const api = await apiCurveLines(runId);
    for (const [key, n] of Object.entries(seen)) expect(api[key], key).toBeGreaterThanOrEqual(n);
    await page.screenshot({ path: artifactPath("run-live.png"), fullPage: true });
    await expectChartMatchesApi(page, runId);

    const seqBeforeReload = await lastSeq(page);
    await page.reload();
    await expect.poll(() => page.locator("section.run").getAttribute("data-stream")).toBe("live");
    // It resubscribed after what it had, not from the start.
    expect(subscribed.at(-1)).toBeGreaterThanOrEqual(seqBeforeReload);
    expect(subscribed.at(-1)).toBeGreaterThan(0);
    const afterReload = await chartPoints(page);
    await expect.poll(() => chartPoints(page), { timeout: 60_000 }).toBeGreaterThan(afterReload);
    await expectChartMatchesApi(page, runId);

    const answers: string[] = [];
    page.on("response", async (r) => {
      if (r.request().postData()?.includes("DashboardCancelRun")) answers.push(await r.text());
    });
    await page.getByRole("button", { name: "Cancel run" }).click();
    await expect.poll(() => answers.length, { timeout: 30_000 }).toBe(1);
    expect(JSON.parse(answers[0]!), answers[0]).toMatchObject({
      data: { cancelRun: { run: { state: "CANCELLED" }, userErrors: [] } },
    });
    await expect.poll(() => page.locator("h1 .badge").textContent(), { timeout: 60_000 }).toBe("CANCELLED");
    await expect
      .poll(() => page.locator("section.run").getAttribute("data-stream"), { timeout: 60_000 })
      .toBe("ended");
    // The whole log up to the run's end: still every progress event once.
    await expectChartMatchesApi(page, runId);

    // Retry a cancelled module: the page shows what the mutation answered (userErrors or the new state).
    const retried: string[] = [];
    page.on("response", async (r) => {
      if (r.request().postData()?.includes("DashboardRetryModule")) retried.push(await r.text());
    });
    await page.getByRole("button", { name: "Retry module 0" }).click();
    await expect.poll(() => retried.length, { timeout: 30_000 }).toBe(1);
    const answer = JSON.parse(retried[0]!) as {
      data: { retryModule: { module: { state: string } | null; userErrors: { code: string }[] } };
    };
    const { userErrors } = answer.data.retryModule;
    if (userErrors.length) {
      await expect
        .poll(() => page.locator(".user-errors li").first().getAttribute("data-code"))
        .toBe(userErrors[0]!.code);
    } else {
      // The run goes on: the row leaves CANCELLED and the page follows the run's events again.
      await expect
        .poll(() => page.locator('table.modules tr[data-module="0"]').getAttribute("data-state"), {
          timeout: 30_000,
        })
        .toMatch(/^(QUEUED|RUNNING)$/);
      await expect
        .poll(() => page.locator("section.run").getAttribute("data-stream"), { timeout: 30_000 })
        .toBe("live");
      await page.getByRole("button", { name: "Cancel run" }).click();
      await expect.poll(() => page.locator("h1 .badge").textContent(), { timeout: 60_000 }).toBe("CANCELLED");
      await expect
        .poll(() => page.locator("section.run").getAttribute("data-stream"), { timeout: 60_000 })
        .toBe("ended");
      await expectChartMatchesApi(page, runId);
    }
    await page.screenshot({ path: artifactPath("run-cancelled.png"), fullPage: true });

    await page.goto(`${local.api.dashboardUrl}#/runs`);
    // The first test's run and its reuse run, and this one.
    await expect.poll(() => page.locator("table.runs tbody tr").count()).toBe(3);
    await page.getByLabel("State").selectOption("CANCELLED");
    await expect.poll(() => page.locator("table.runs tbody tr").count()).toBe(1);
    expect(await page.locator("table.runs tbody tr").getAttribute("data-state")).toBe("CANCELLED");
    await page.screenshot({ path: artifactPath("runs-list.png"), fullPage: true });
    await page.close();
    expect(cspViolations).toEqual([]);
  }, 600_000);
});
