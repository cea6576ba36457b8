/**
 * `deliberate report` as a library call: read run directories, compute the statistics, render the
 * plots and write report.md, report.html, report.json and plots/*.svg into one directory.
 */
import { mkdir } from "node:fs/promises";
import { writeFileAtomically } from "../files.js";
import { join } from "node:path";
import { measureEfficiency, type Efficiency } from "./efficiency.js";
import { loadRuns } from "./load.js";
import { comparePaired, parseBaseline, type PairedComparison } from "./paired.js";
import { reportPlots } from "./plots.js";
import { renderSvg } from "./render.js";
import { DEFAULT_BOOTSTRAP, summarize, type BootstrapOptions, type Summary } from "./stats.js";
import { renderHtml, renderJson, renderMarkdown, type ReportContent } from "./write.js";

export interface ReportOptions {
  /** Where the report goes (created if missing). */
  out: string;
  bootstrap?: Partial<BootstrapOptions>;
  /** The strategy label that compute efficiency is measured against (default: the weighted best-of-n). */
  reference?: string;
  /**
   * Baselines of the paired comparisons, each a strategy label (compared at every budget with that
   * budget's cells) or `label@N` (compared with every other cell). Default: the efficiency reference.
   */
  baselines?: readonly string[];
}

export interface WrittenReport {
  markdown: string;
  html: string;
  json: string;
  plots: string[];
  summary: Summary;
  efficiency: Efficiency;
  paired: PairedComparison[];
  warnings: string[];
}

export async function writeReport(runDirs: readonly string[], options: ReportOptions): Promise<WrittenReport> {
  const { runs, results, warnings } = await loadRuns(runDirs);
  const summary = summarize(results, { ...DEFAULT_BOOTSTRAP, ...options.bootstrap });
  const efficiency = measureEfficiency(summary, results, runs, options.reference);
  const baselines = options.baselines ?? (efficiency.reference === null ? [] : [efficiency.reference]);
  const paired = comparePaired(results, baselines.map(parseBaseline), { ...DEFAULT_BOOTSTRAP, ...options.bootstrap });
  const plots: ReportContent["plots"] = [];
  for (const plot of reportPlots(summary)) plots.push({ name: plot.name, title: plot.title, svg: await renderSvg(plot.spec) });
  const content: ReportContent = { runs, summary, efficiency, paired, plots, warnings };

  await mkdir(join(options.out, "plots"), { recursive: true });
  const written: WrittenReport = {
    markdown: join(options.out, "report.md"),
    html: join(options.out, "report.html"),
    json: join(options.out, "report.json"),
    plots: plots.map((plot) => join(options.out, "plots", `${plot.name}.svg`)),
    summary,
    efficiency,
    paired,
    warnings,
  };
  await Promise.all([
    writeFileAtomically(written.markdown, "--out", renderMarkdown(content)),
    writeFileAtomically(written.html, "--out", renderHtml(content)),
    writeFileAtomically(written.json, "--out", renderJson(content)),
    ...plots.map((plot, i) => writeFileAtomically(written.plots[i] as string, "--out", plot.svg)),
  ]);
  return written;
}
