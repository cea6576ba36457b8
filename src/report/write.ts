/**
 * The report's three forms: report.md (tables, the plots as files under plots/), report.html (one
 * self-contained page: CSS and SVG inline, no script, no font or image to fetch) and report.json
 * (the numbers for machines). The sentences and tables are built once and shared by md and html.
 */
import { z } from "zod";
import type { Efficiency, EfficiencyRow, RatioInterval } from "./efficiency.js";
import type { RunInfo } from "./load.js";
import type { PairedComparison, PairedGroup, PairedRow } from "./paired.js";
import { strategyColor } from "./plots.js";
import { TIE_TOLERANCE, type Cell, type Summary, type Win } from "./stats.js";

export interface ReportContent {
  runs: RunInfo[];
  summary: Summary;
  efficiency: Efficiency;
  paired: PairedComparison[];
  /** Rendered plots in display order: file stem, title, SVG text. */
  plots: { name: string; title: string; svg: string }[];
  warnings: string[];
}

/** A table whose cells are plain text, except `**bold**` (a winner's name). */
export interface Table {
  header: string[];
  /** Columns holding numbers, right-aligned. */
  numeric: boolean[];
  rows: string[][];
}

const pct = (value: number) => `${(value * 100).toFixed(1)}%`;
const points = (value: number) => (value * 100).toFixed(1);
const ciText = (low: number, high: number) => `${points(low)}–${points(high)}`;
const tokensText = (value: number | null) => (value === null ? "–" : Math.round(value).toLocaleString("en-US"));
const generationsText = (value: number | null) => (value === null ? "–" : value.toFixed(1));
const flopsText = (value: number | null) => (value === null ? "–" : value.toExponential(2).replace("e+", "e"));
const wallText = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const bold = (text: string) => `**${text}**`;

function summaryTable(summary: Summary): Table {
  // A recursive policy's mean loops per generated token (early exit), only when some cell has one.
  const loops = summary.cells.some((cell) => cell.loopsPerToken !== undefined);
  const table: Table = {
    header: ["strategy", "budget N", "accuracy", "95% CI", "problems", "seeds", "items", "errors", "generations / problem", "tokens / problem", "FLOPs / problem", "wall / problem"],
    numeric: [false, true, true, true, true, true, true, true, true, true, true, true],
    rows: summary.cells.map((cell: Cell) => [
      cell.strategy,
      String(cell.budget),
      pct(cell.accuracy),
      ciText(cell.ciLow, cell.ciHigh),
      String(cell.problems),
      String(cell.seeds),
      String(cell.items),
      String(cell.errors),
      generationsText(cell.meanGenerations),
      tokensText(cell.meanGeneratedTokens),
      flopsText(cell.meanFlops),
      wallText(cell.meanWallMs),
    ]),
  };
  if (!loops) return table;
  const copies = summary.cells.some((cell) => cell.copiesPerToken !== undefined);
  return {
    header: [...table.header, "loops / token", ...(copies ? ["copies / token"] : [])],
    numeric: [...table.numeric, true, ...(copies ? [true] : [])],
    rows: table.rows.map((row, i) => [
      ...row,
      summary.cells[i]?.loopsPerToken?.toFixed(2) ?? "–",
      ...(copies ? [summary.cells[i]?.copiesPerToken?.toFixed(2) ?? "–"] : []),
    ]),
  };
}

function winSentence(win: Win): string {
  const names = win.winners.map(bold).join(" and ");
  if (win.runnerUp === null && win.winners.length > 1) return `N=${win.budget}: every strategy that ran ties at ${pct(win.accuracy)} (${names}).`;
  if (win.runnerUp === null) return `N=${win.budget}: only ${names} ran (${pct(win.accuracy)}).`;
  if (win.winners.length > 1) return `N=${win.budget}: ${names} tie at ${pct(win.accuracy)}.`;
  const lead = `${names} ${pct(win.accuracy)}, ahead of ${win.runnerUp.strategy} (${pct(win.runnerUp.accuracy)}) by ${points(win.accuracy - win.runnerUp.accuracy)} points`;
  if (win.difference === null) return `N=${win.budget}: ${lead}.`;
  const verdict = win.difference.clear ? "a clear lead" : "within noise";
  const signed = (value: number) => points(value).replace("-", "−");
  return `N=${win.budget}: ${lead}; paired 95% CI of the lead ${signed(win.difference.low)} to ${signed(win.difference.high)} points: ${verdict}.`;
}

function winSentences(summary: Summary): string[] {
  const overall = summary.wins.filter((win) => win.level === null);
  return [...overall.map(winSentence), bestOverallSentence(summary.cells)];
}

/** The most accurate (strategy, budget) of the run, or the ones that tie for it: a tie names no winner. */
function bestOverallSentence(cells: readonly Cell[]): string {
  const top = Math.max(...cells.map((cell) => cell.accuracy));
  const best = cells.filter((cell) => top - cell.accuracy < TIE_TOLERANCE);
  const [only] = best;
  if (only !== undefined && best.length === 1) {
    return (
      `Most accurate overall: ${bold(only.strategy)} at N=${only.budget} with ${pct(only.accuracy)} ` +
      `(95% CI ${ciText(only.ciLow, only.ciHigh)}), for ${tokensText(only.meanGeneratedTokens)} generated tokens per problem.`
    );
  }
  if (best.length === cells.length) return `No strategy is most accurate overall: every strategy at every budget ties at ${pct(top)}.`;
  return `No single most accurate strategy overall: ${best.map((cell) => `${bold(cell.strategy)} at N=${cell.budget}`).join(", ")} tie at ${pct(top)}.`;
}

const LEVEL_NOTE = "A level holds fewer problems than the whole run, so these winners are noisier: the level plot shows their CIs.";

/** Rows: levels; columns: budgets; cell: the winner(s) and their accuracy. */
function levelWinsTable(summary: Summary): Table | null {
  if (summary.levels.length === 0) return null;
  const cell = (level: number, budget: number) => {
    const win = summary.wins.find((w) => w.level === level && w.budget === budget);
    if (win === undefined) return "–";
    const allTie = win.winners.length > 1 && win.runnerUp === null;
    return `${allTie ? "all tie at" : win.winners.map(bold).join(" = ")} ${pct(win.accuracy)}`;
  };
  return {
    header: ["level", ...summary.budgets.map((budget) => `N=${budget}`)],
    numeric: [false, ...summary.budgets.map(() => false)],
    rows: summary.levels.map((level) => [String(level), ...summary.budgets.map((budget) => cell(level, budget))]),
  };
}

/** Rows: strategy and budget; columns: accuracy on each level and overall, then the compute spent. */
function levelAccuracyTable(summary: Summary): Table | null {
  if (summary.levels.length === 0) return null;
  const levelCell = (cell: Cell, level: number) => {
    const group = summary.byLevel.find((g) => g.strategy === cell.strategy && g.budget === cell.budget && g.group === level);
    return group === undefined ? "–" : pct(group.accuracy);
  };
  return {
    header: ["strategy", "budget N", ...summary.levels.map((level) => `level ${level}`), "all", "tokens / problem", "FLOPs / problem"],
    numeric: [false, true, ...summary.levels.map(() => true), true, true, true],
    rows: summary.cells.map((cell) => [
      cell.strategy,
      String(cell.budget),
      ...summary.levels.map((level) => levelCell(cell, level)),
      pct(cell.accuracy),
      tokensText(cell.meanGeneratedTokens),
      flopsText(cell.meanFlops),
    ]),
  };
}

/** The budget of the one-line efficiency statements; every budget is in the table. */
const STATEMENT_BUDGET = 16;

/** A needed amount or a ratio with its bound: "23.4", "≤ 1.0", "> 16.0". */
function bounded(row: EfficiencyRow, text: string): string {
  return row.bound === "exact" ? text : `${row.bound === "at-most" ? "≤" : ">"} ${text}`;
}
const ratioText = (row: EfficiencyRow, ratio: number | null) => (ratio === null ? "–" : bounded(row, `${ratio.toFixed(2)}x`));
/** A ratio's bootstrap interval, "0.25–16.00x" ("1.00x–∞" when unbounded above). */
const intervalRange = (interval: RatioInterval) =>
  interval.high === null ? `${interval.low.toFixed(2)}x–∞` : `${interval.low.toFixed(2)}–${interval.high.toFixed(2)}x`;
/** The interval in a table cell, "0.25–16.00x, within noise" when it includes 1x. */
const intervalText = (interval: RatioInterval | null) =>
  interval === null ? "–" : `${intervalRange(interval)}${interval.withinNoise ? ", within noise" : ""}`;

function efficiencyTable(efficiency: Efficiency): Table {
  const reference = efficiency.reference as string;
  return {
    header: [
      "strategy",
      "budget N",
      "accuracy",
      "generations spent",
      `${reference} generations needed`,
      "ratio",
      "ratio 95% CI",
      "tokens spent",
      `${reference} tokens needed`,
      "tokens ratio",
      "tokens ratio 95% CI",
    ],
    numeric: [false, true, true, true, true, true, true, true, true, true, true],
    rows: efficiency.rows.map((row) => [
      row.strategy,
      String(row.budget),
      pct(row.accuracy),
      generationsText(row.generations),
      bounded(row, generationsText(row.referenceBudgetNeeded)),
      ratioText(row, row.generationsRatio),
      intervalText(row.generationsInterval),
      tokensText(row.generatedTokens),
      row.referenceTokensNeeded === null ? "–" : bounded(row, tokensText(row.referenceTokensNeeded)),
      ratioText(row, row.tokensRatio),
      intervalText(row.tokensInterval),
    ]),
  };
}

function efficiencySentence(row: EfficiencyRow): string {
  const bound = { exact: "", "at-most": "at most ", "at-least": "more than " }[row.bound];
  const edge = { exact: "", "at-most": " (its smallest budget)", "at-least": " (its largest budget)" }[row.bound];
  // ", within noise (95% CI 0.25–16.00x over 50 problems)"
  const interval = (value: RatioInterval | null) =>
    value === null ? "" : `${value.withinNoise ? ", within noise" : ""} (95% CI ${intervalRange(value)} over ${value.problems} problems)`;
  const tokens = row.tokensRatio === null ? "" : `; in generated tokens ${bound}${row.tokensRatio.toFixed(2)}x${interval(row.tokensInterval)}`;
  return (
    `${row.reference} needs ${bound}${generationsText(row.referenceBudgetNeeded)} generations${edge} to match ${bold(row.strategy)} ` +
    `at N=${row.budget} (${generationsText(row.generations)} generations spent): ${bound}${row.generationsRatio.toFixed(2)}x${interval(row.generationsInterval)}${tokens}.`
  );
}

function efficiencySentences(efficiency: Efficiency): string[] {
  return efficiency.rows.filter((row) => row.budget === STATEMENT_BUDGET).map(efficiencySentence);
}

function efficiencyNote(summary: Summary, reference: string): string {
  const budgets = summary.cells.filter((cell) => cell.strategy === reference).map((cell) => cell.budget);
  return (
    `How much compute ${reference} needs to reach each strategy's accuracy, divided by what that strategy spent at its budget ` +
    `(means per problem; generations include compute-optimal's difficulty-estimate samples); above 1x the strategy is more efficient. ` +
    `${reference}'s need is interpolated linearly in log2(compute) between its measured budgets (${budgets.join(", ")}), ` +
    `so a ratio is only as fine as that grid: ≤ means ${reference}'s smallest budget already matches (the ratio is an upper bound), ` +
    `> that its largest does not (a lower bound). Each ratio has a 95% percentile bootstrap interval over the problems that every cell involved ran ` +
    `(${summary.bootstrap.resamples.toLocaleString("en-US")} seeded resamples, every mean recomputed; a resample whose ratio is only a bound counts the whole range it allows, ` +
    `up to ∞ or down to 0); ` +
    `a ratio whose interval includes 1x is within noise: these problems do not tell that strategy's efficiency from ${reference}'s. ` +
    `Snell et al. 2024 report about 4x for compute-optimal scaling against best-of-N.`
  );
}

const groupText = (group: PairedGroup) => (group.kind === "all" ? "all" : `${group.kind} ${group.value}`);
const signedPoints = (value: number) => `${value > 0 ? "+" : ""}${points(value)}`.replace("-", "−");

function pairedTable(comparison: PairedComparison): Table {
  return {
    header: ["strategy", "budget N", "baseline", "group", "problems", "accuracy", "baseline accuracy", "difference (points)", "95% CI", "better / worse", "verdict"],
    numeric: [false, true, false, false, true, true, true, true, true, true, false],
    rows: comparison.rows.map((row) => [
      row.strategy,
      String(row.budget),
      `${row.baselineStrategy}@${row.baselineBudget}`,
      groupText(row.group),
      String(row.problems),
      pct(row.accuracy),
      pct(row.baselineAccuracy),
      signedPoints(row.difference),
      `${signedPoints(row.low)} to ${signedPoints(row.high)}`,
      `${row.better} / ${row.worse}`,
      row.clear ? (row.difference > 0 ? "clearly above" : "clearly below") : "within noise",
    ]),
  };
}

function pairedSentence(row: PairedRow): string {
  const verdict = row.clear ? (row.difference > 0 ? "clearly above" : "clearly below") : "within noise";
  return (
    `${bold(row.strategy)} at N=${row.budget} against ${row.baselineStrategy} at N=${row.baselineBudget}: ${pct(row.accuracy)} against ` +
    `${pct(row.baselineAccuracy)} on ${row.problems} problems, ${signedPoints(row.difference)} points ` +
    `(paired 95% CI ${signedPoints(row.low)} to ${signedPoints(row.high)}; better on ${row.better}, worse on ${row.worse}): ${verdict}.`
  );
}

function pairedNote(summary: Summary): string {
  return (
    `Each row compares a strategy with the baseline on the problems both ran: the difference of their accuracies, with a paired ` +
    `95% percentile bootstrap interval over those problems (${summary.bootstrap.resamples.toLocaleString("en-US")} seeded resamples ` +
    `of the per-problem differences), and the problems where each side did better. A bin is the difficulty compute-optimal predicted ` +
    `for the problem; the other side's items of that problem are put in the same bin. A level or bin holds few problems: ` +
    `most of their differences are within noise.`
  );
}

const pairedTitle = (comparison: PairedComparison) => `Paired comparisons against ${comparison.baseline}`;

/** Nested config values as ["a.b", "value"] rows (arrays of objects by index: "a.0.b"), for display. */
function flattenConfig(value: unknown, prefix = ""): [string, string][] {
  const nested = (entries: [string, unknown][]) =>
    entries.flatMap(([key, inner]) => flattenConfig(inner, prefix === "" ? key : `${prefix}.${key}`));
  if (Array.isArray(value) && value.some((item) => item !== null && typeof item === "object")) {
    return nested(value.map((item, i) => [String(i), item]));
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) return nested(Object.entries(value));
  const text = typeof value === "string" ? value : Array.isArray(value) ? value.join(", ") : JSON.stringify(value);
  return [[prefix, text.length > 120 ? `${text.slice(0, 117)}...` : text]];
}

/** The dataset and models a run's config names, e.g. "dataset synth, policy griffin-tiny" ("" if none). */
function configHeadline(config: Record<string, unknown> | null): string {
  const rows = config === null ? [] : flattenConfig(config);
  const find = (key: RegExp) => rows.find(([name]) => key.test(name))?.[1];
  const parts: [string, string | undefined][] = [
    ["dataset", find(/(^|\.)dataset\.name$/)],
    ["policy", find(/(^|\.)policy$/)],
    ["verifier", find(/(^|\.)verifier$/)],
  ];
  return parts
    .filter(([, value]) => value !== undefined && value !== "null")
    .map(([name, value]) => `${name} ${value}`)
    .join(", ");
}

function runTables(runs: RunInfo[]): { dir: string; table: Table }[] {
  return runs.map((run) => ({
    dir: run.dir,
    table: {
      header: ["field", "value"],
      numeric: [false, false],
      rows: [
        ...(run.config === null ? [["config", "(no config.json)"]] : flattenConfig(run.config)),
        ...run.files.map((entry) => ["results", `${entry.file} (${entry.results} results)`]),
      ],
    },
  }));
}

function notes(content: ReportContent): string[] {
  const out = [...content.warnings, ...content.runs.flatMap(skippedNotes)];
  if (content.efficiency.missing !== null) out.push(content.efficiency.missing);
  const problems = new Set(content.summary.cells.map((cell) => cell.problems));
  if (problems.size > 1) {
    out.push(`Cells cover different numbers of problems (${[...problems].sort((a, b) => a - b).join(", ")}): the run may be incomplete, and a comparison across them is over different problems.`);
  }
  return out;
}

/** The configurations a run skipped at some budget (their shape does not fit it), from its config.json. */
function skippedNotes(run: RunInfo): string[] {
  const parsed = skippedInConfig.safeParse(run.config);
  if (!parsed.success) return [];
  return parsed.data.experiment.skipped.map((skip) => `${skip.label} did not run at N=${skip.budget} in ${run.dir}: ${skip.reason}.`);
}

/** The part of a run's config.json with its skipped configurations (runs from before it have none). */
const skippedInConfig = z.object({
  experiment: z.object({ skipped: z.array(z.object({ label: z.string(), budget: z.number(), reason: z.string() })) }),
});

function runName(run: RunInfo): string {
  const headline = configHeadline(run.config);
  return headline === "" ? run.dir : `${run.dir} (${headline})`;
}

function overview(content: ReportContent): string {
  const { summary } = content;
  const problems = new Set(summary.cells.map((cell) => cell.problems));
  const items = summary.cells.reduce((sum, cell) => sum + cell.items, 0);
  return (
    `${items} work items from ${content.runs.map(runName).join(", ")}: ${summary.strategies.length} strategies ` +
    `(${summary.strategies.join(", ")}), budgets ${summary.budgets.join(", ")}, ${Math.max(...problems)} problems. ` +
    `Accuracy is the mean over problems of each problem's mean over seeds; failed items count as wrong. ` +
    `Confidence intervals: 95% percentile bootstrap over problems ` +
    `(${summary.bootstrap.resamples} resamples, seed ${summary.bootstrap.seed}).`
  );
}

// ---- Markdown

const mdCell = (text: string) => text.replace(/\|/g, "\\|");

export function markdownTable(table: Table): string {
  const line = (cells: string[]) => `| ${cells.map(mdCell).join(" | ")} |`;
  return [line(table.header), `|${table.numeric.map((n) => (n ? " ---: " : " --- ")).join("|")}|`, ...table.rows.map(line)].join("\n");
}

function markdownEfficiency({ summary, efficiency }: ReportContent): string[] {
  if (efficiency.rows.length === 0) return [];
  const reference = efficiency.reference as string;
  const sentences = efficiencySentences(efficiency);
  return [
    `## Compute efficiency against ${reference}`,
    ...(sentences.length === 0 ? [] : [sentences.map((sentence) => `- ${sentence}`).join("\n")]),
    efficiencyNote(summary, reference),
    markdownTable(efficiencyTable(efficiency)),
  ];
}

export function renderMarkdown(content: ReportContent): string {
  const levels = levelWinsTable(content.summary);
  const levelAccuracy = levelAccuracyTable(content.summary);
  const parts = [
    "# deliberate report",
    overview(content),
    "## Which strategy wins",
    winSentences(content.summary).map((sentence) => `- ${sentence}`).join("\n"),
    ...(levels === null ? [] : ["### Most accurate strategy per level and budget", LEVEL_NOTE, markdownTable(levels)]),
    ...(levelAccuracy === null ? [] : ["### Accuracy per level", markdownTable(levelAccuracy)]),
    ...markdownEfficiency(content),
    ...content.paired.filter((comparison) => comparison.rows.length > 0).flatMap((comparison) => [
      `## ${pairedTitle(comparison)}`,
      comparison.rows.filter((row) => row.group.kind === "all").map((row) => `- ${pairedSentence(row)}`).join("\n"),
      pairedNote(content.summary),
      markdownTable(pairedTable(comparison)),
    ]),
    "## Summary",
    markdownTable(summaryTable(content.summary)),
    "## Plots",
    ...content.plots.map((plot) => `![${plot.title}](plots/${plot.name}.svg)`),
    "## Runs",
    ...runTables(content.runs).flatMap(({ dir, table }) => [`### ${dir}`, markdownTable(table)]),
  ];
  const notesList = notes(content);
  if (notesList.length > 0) parts.push("## Notes", notesList.map((note) => `- ${note}`).join("\n"));
  return parts.join("\n\n") + "\n";
}

// ---- HTML

const escapeHtml = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Escaped text, with `**name**` in bold. */
const richHtml = (text: string) => escapeHtml(text).replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>");

function htmlTable(table: Table, summary: Summary, strategyColumn: number | null, className?: string): string {
  const head = table.header.map((cell, i) => `<th${table.numeric[i] ? ' class="num"' : ""}>${escapeHtml(cell)}</th>`).join("");
  const rows = table.rows.map((row) => {
    const cells = row.map((cell, i) => {
      const swatch = i === strategyColumn ? `<span class="swatch" style="background:${strategyColor(summary, cell)}"></span>` : "";
      return `<td${table.numeric[i] ? ' class="num"' : ""}>${swatch}${richHtml(cell)}</td>`;
    });
    return `<tr>${cells.join("")}</tr>`;
  });
  return `<table${className === undefined ? "" : ` class="${className}"`}><thead><tr>${head}</tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table>`;
}

const STYLE = `
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #f6f6f4; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 36px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
p, li { line-height: 1.5; }
.overview { color: #444; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; }
th { background: #f0f0ee; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafafa; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
table.wins td { white-space: normal; min-width: 90px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
figure { margin: 16px 0 28px; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
.notes li { color: #8a4b00; }
`;

function htmlEfficiency({ summary, efficiency }: ReportContent): string[] {
  if (efficiency.rows.length === 0) return [];
  const reference = efficiency.reference as string;
  const sentences = efficiencySentences(efficiency);
  return [
    `<h2>Compute efficiency against ${escapeHtml(reference)}</h2>`,
    ...(sentences.length === 0 ? [] : [`<ul>${sentences.map((sentence) => `<li>${richHtml(sentence)}</li>`).join("\n")}</ul>`]),
    `<p>${escapeHtml(efficiencyNote(summary, reference))}</p>`,
    htmlTable(efficiencyTable(efficiency), summary, 0),
  ];
}

export function renderHtml(content: ReportContent): string {
  const { summary } = content;
  const levels = levelWinsTable(summary);
  const levelAccuracy = levelAccuracyTable(summary);
  const notesList = notes(content);
  const body = [
    "<h1>deliberate report</h1>",
    `<p class="overview">${escapeHtml(overview(content))}</p>`,
    "<h2>Which strategy wins</h2>",
    `<ul>${winSentences(summary).map((sentence) => `<li>${richHtml(sentence)}</li>`).join("\n")}</ul>`,
    ...(levels === null
      ? []
      : ["<h3>Most accurate strategy per level and budget</h3>", `<p>${escapeHtml(LEVEL_NOTE)}</p>`, htmlTable(levels, summary, null, "wins")]),
    ...(levelAccuracy === null ? [] : ["<h3>Accuracy per level</h3>", htmlTable(levelAccuracy, summary, 0)]),
    ...htmlEfficiency(content),
    ...content.paired.filter((comparison) => comparison.rows.length > 0).flatMap((comparison) => [
      `<h2>${escapeHtml(pairedTitle(comparison))}</h2>`,
      `<ul>${comparison.rows.filter((row) => row.group.kind === "all").map((row) => `<li>${richHtml(pairedSentence(row))}</li>`).join("\n")}</ul>`,
      `<p>${escapeHtml(pairedNote(summary))}</p>`,
      htmlTable(pairedTable(comparison), summary, 0),
    ]),
    "<h2>Summary</h2>",
    htmlTable(summaryTable(summary), summary, 0),
    "<h2>Plots</h2>",
    ...content.plots.map((plot) => `<figure id="plot-${plot.name}" aria-label="${escapeHtml(plot.title)}">\n${plot.svg}\n</figure>`),
    "<h2>Runs</h2>",
    ...runTables(content.runs).flatMap(({ dir, table }) => [`<h3>${escapeHtml(dir)}</h3>`, htmlTable(table, summary, null)]),
    ...(notesList.length === 0 ? [] : ["<h2>Notes</h2>", `<ul class="notes">${notesList.map((note) => `<li>${escapeHtml(note)}</li>`).join("")}</ul>`]),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>deliberate report</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body.join("\n")}
</main>
</body>
</html>
`;
}

// ---- JSON

export function renderJson(content: ReportContent): string {
  const { summary } = content;
  return (
    JSON.stringify(
      {
        runs: content.runs,
        warnings: content.warnings,
        ...summary,
        efficiency: content.efficiency,
        paired: content.paired,
        plots: content.plots.map((plot) => `plots/${plot.name}.svg`),
      },
      null,
      2,
    ) + "\n"
  );
}
