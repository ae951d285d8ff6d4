/**
 * Headless Chromium for browser tests and the dashboard bench: Debian's `chromium` driven by
 * playwright-core (`npx playwright install` would download a browser; nothing is downloaded),
 * with a fresh profile each time and no traffic of its own (no updates, sync or QUIC).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** Screenshots the tests keep (git-ignored). */
export const UI_ARTIFACTS = resolve(import.meta.dirname, "../../test-artifacts/ui");

export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`;
}

/** The dashboard built from the current sources (a no-op when ui/dist is up to date). */
export function buildDashboard(): void {
  execFileSync(process.execPath, [resolve(import.meta.dirname, "../../scripts/build-ui.mjs")], {
    stdio: "inherit",
  });
}

export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "incubator-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function artifactPath(name: string): string {
  mkdirSync(UI_ARTIFACTS, { recursive: true });
  return join(UI_ARTIFACTS, name);
}
