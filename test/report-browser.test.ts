/**
 * report.html in a real browser: Debian's Chromium, headless, through puppeteer-core. Outside CI the
 * test skips when Chromium is not installed; in CI (env CI set) it must run.
 */
import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { launch } from "puppeteer-core";
import { describe, expect, it } from "vitest";
import { writeReport } from "../src/report/report.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const FIXTURE = fileURLToPath(new URL("./fixtures/report-run", import.meta.url));
/** Git-ignored: the report and its screenshot stay there for a person to look at. */
const ARTIFACTS = fileURLToPath(new URL("../test-artifacts", import.meta.url));

const skip = !existsSync(CHROMIUM) && !process.env.CI;
if (skip) console.warn(`report-browser.test.ts skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);

describe.skipIf(skip)("report.html in headless Chromium", () => {
  it("renders every plot with its marks, without console errors or network requests", async () => {
    const report = await writeReport([FIXTURE], { out: join(ARTIFACTS, "report") });
    const url = pathToFileURL(report.html).href;
    const browser = await launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      const requests: string[] = [];
      page.on("console", (message) => {
        if (message.type() === "error") errors.push(message.text());
      });
      page.on("pageerror", (error) => errors.push(String(error)));
      page.on("request", (request) => requests.push(request.url()));
      await page.setViewport({ width: 1200, height: 900 });
      await page.goto(url, { waitUntil: "load" });

      const figures = await page.$$eval("figure", (elements) =>
        elements.map((figure) => ({
          id: figure.id,
          marks: figure.querySelectorAll("g.role-mark > path, g.role-mark > line").length,
          width: figure.querySelector("svg")?.getBoundingClientRect().width ?? 0,
        })),
      );
      expect(figures.map((figure) => figure.id)).toEqual(report.plots.map((plot) => `plot-${basename(plot, ".svg")}`));
      for (const figure of figures) {
        expect(figure.marks, figure.id).toBeGreaterThan(0);
        expect(figure.width, figure.id).toBeGreaterThan(300);
      }
      expect(await page.$$eval("table", (tables) => tables.length)).toBeGreaterThanOrEqual(2);
      expect(errors).toEqual([]);
      expect(requests).toEqual([url]);

      await page.screenshot({ path: join(ARTIFACTS, "report.png"), fullPage: true });
      expect(existsSync(join(ARTIFACTS, "report.png"))).toBe(true);
    } finally {
      await browser.close();
    }
  });
});
