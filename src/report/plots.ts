/**
 * The report's plots as Vega-Lite specifications (rendered to SVG by render.ts). Every plot colours
 * a strategy the same way and shows accuracy with its 95% bootstrap CI as a vertical bar; on budget
 * and generations axes the strategies are nudged apart a little so that their bars do not overlap.
 */
import type { TopLevelSpec } from "vega-lite";
import type { Summary } from "./stats.js";

/** Vega's tableau10 scheme, listed here so that the report's tables can use the same colours. */
const PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"];

export function strategyColor(summary: Summary, strategy: string): string {
  return PALETTE[summary.strategies.indexOf(strategy) % PALETTE.length] as string;
}

export interface Plot {
  /** File name stem, e.g. "accuracy-budget". */
  name: string;
  title: string;
  spec: TopLevelSpec;
}

const FONT = "Helvetica, Arial, sans-serif";

const CONFIG: NonNullable<TopLevelSpec["config"]> = {
  font: FONT,
  background: "white",
  padding: 12,
  view: { stroke: "#ccc" },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal", titleColor: "#333", gridColor: "#eee" },
  legend: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: "normal", symbolSize: 80, symbolOpacity: 1 },
  title: { fontSize: 15, subtitleFontSize: 12, subtitleColor: "#555", anchor: "start", offset: 14 },
  header: { labelFontSize: 12, labelFontWeight: "bold" },
};

// Subtitles are arrays of short lines: without a canvas, Vega estimates a text's width generously
// (0.8 em per character), and a long line would widen the whole SVG.
const CI_NOTE = "bars: 95% bootstrap CI over problems";

/** A budget (or generations) nudged by a few percent per strategy, on the log2 axis, so that CI bars stand apart. */
function dodge(summary: Summary, strategy: string, x: number): number {
  const index = summary.strategies.indexOf(strategy);
  const offset = (index - (summary.strategies.length - 1) / 2) * 0.06;
  return x * 2 ** offset;
}

/** Shared encodings; the legend lists only the strategies in `rows`, each in its report-wide colour. */
function encodings(summary: Summary, rows: readonly { strategy: string }[]) {
  const strategies = summary.strategies.filter((strategy) => rows.some((row) => row.strategy === strategy));
  const y = {
    field: "accuracy",
    type: "quantitative" as const,
    title: "accuracy",
    scale: { zero: false },
    axis: { format: ".0%" },
  };
  const color = {
    field: "strategy",
    type: "nominal" as const,
    title: "strategy",
    scale: { domain: strategies, range: strategies.map((strategy) => strategyColor(summary, strategy)) },
  };
  const budgetX = {
    field: "x",
    type: "quantitative" as const,
    title: "budget N (generations, log scale)",
    scale: { type: "log" as const, base: 2, padding: 12 },
    axis: { values: summary.budgets, format: "d", grid: true },
  };
  return { y, color, budgetX };
}

type Layer = Extract<TopLevelSpec, { layer: unknown }>["layer"][number];

/** Rule (CI), line and points over the same x; `order` keeps the line in budget order. */
function accuracyLayers(y: ReturnType<typeof encodings>["y"]): Layer[] {
  return [
    {
      mark: { type: "rule", strokeWidth: 1.5, opacity: 0.7 },
      encoding: { y: { field: "ciLow", type: "quantitative", title: y.title }, y2: { field: "ciHigh" } },
    },
    { mark: { type: "line", strokeWidth: 2 }, encoding: { y, order: { field: "budget", type: "quantitative" } } },
    { mark: { type: "point", filled: true, size: 55, opacity: 1 }, encoding: { y } },
  ];
}

function budgetPlot(summary: Summary): Plot {
  const { y, color, budgetX } = encodings(summary, summary.cells);
  const title = "Accuracy against budget";
  return {
    name: "accuracy-budget",
    title,
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: { text: title, subtitle: ["mean over problems, seeds averaged per problem", CI_NOTE] },
      width: 560,
      height: 320,
      data: { values: summary.cells.map((cell) => ({ ...cell, x: dodge(summary, cell.strategy, cell.budget) })) },
      encoding: { x: budgetX, color },
      layer: accuracyLayers(y),
      config: CONFIG,
    },
  };
}

type Measure = "meanGenerations" | "meanGeneratedTokens" | "meanFlops";

const MEASURES: Record<Measure, { name: string; title: string; subtitle: string; axisTitle: string }> = {
  meanGenerations: {
    name: "accuracy-generations",
    title: "Accuracy against generations",
    subtitle: "one point per budget; mean per problem, difficulty estimate included",
    axisTitle: "generations per problem (log2 scale)",
  },
  meanGeneratedTokens: {
    name: "accuracy-tokens",
    title: "Accuracy against generated tokens",
    subtitle: "one point per budget; policy tokens, mean per problem",
    axisTitle: "generated tokens per problem (log2 scale)",
  },
  meanFlops: {
    name: "accuracy-flops",
    title: "Accuracy against FLOPs",
    subtitle: "one point per budget; policy + verifier, mean per problem",
    axisTitle: "FLOPs per problem (2 x parameters x tokens, log scale)",
  },
};

/**
 * Accuracy against a mean compute measure per problem; one point per budget. Generations mostly equal
 * the budget, so there the strategies are nudged apart as on the budget axis.
 */
function computePlot(summary: Summary, measure: Measure): Plot | null {
  const cells = summary.cells.filter((cell) => (cell[measure] ?? 0) > 0);
  if (cells.length === 0) return null;
  const { y, color } = encodings(summary, cells);
  const { name, title, subtitle, axisTitle } = MEASURES[measure];
  const generations = measure === "meanGenerations";
  const scale = { type: "log" as const, base: measure === "meanFlops" ? 10 : 2, nice: false, padding: 16 };
  const axis = generations ? { values: summary.budgets, format: "d", grid: true } : { format: measure === "meanFlops" ? "~s" : ",d" };
  return {
    name,
    title,
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: { text: title, subtitle: [subtitle, CI_NOTE] },
      width: 560,
      height: 320,
      data: {
        values: cells.map((cell) => {
          const x = cell[measure] as number;
          return { ...cell, x: generations ? dodge(summary, cell.strategy, x) : x };
        }),
      },
      encoding: { x: { field: "x", type: "quantitative", title: axisTitle, scale, axis }, color },
      layer: accuracyLayers(y),
      config: CONFIG,
    },
  };
}

/** Accuracy against budget in one small panel per level (or predicted-difficulty bin). */
function groupPlot(summary: Summary, by: "level" | "bin"): Plot | null {
  const cells = by === "level" ? summary.byLevel : summary.byDifficultyBin;
  if (cells.length === 0) return null;
  const { y, color, budgetX } = encodings(summary, cells);
  const title = by === "level" ? "Accuracy per difficulty level" : "Accuracy per predicted difficulty bin";
  return {
    name: by === "level" ? "accuracy-level" : "accuracy-difficulty-bin",
    title,
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      title: {
        text: title,
        subtitle:
          by === "level"
            ? ["accuracy against budget, one panel per dataset level", CI_NOTE]
            : ["one panel per difficulty bin the strategy predicted", CI_NOTE],
      },
      data: { values: cells.map((cell) => ({ ...cell, x: dodge(summary, cell.strategy, cell.budget) })) },
      // One row of panels (a level count is small); a wrapped facet misaligns the panel headers.
      facet: {
        column: {
          field: "group",
          type: "ordinal",
          title: null,
          header: { labelExpr: by === "level" ? "'Level ' + datum.value" : "'Predicted bin ' + datum.value" },
        },
      },
      spec: {
        width: 170,
        height: 170,
        encoding: { x: { ...budgetX, title: "budget N (log scale)" }, color },
        layer: accuracyLayers(y),
      },
      config: CONFIG,
    },
  };
}

export function reportPlots(summary: Summary): Plot[] {
  return [
    budgetPlot(summary),
    computePlot(summary, "meanGenerations"),
    computePlot(summary, "meanGeneratedTokens"),
    computePlot(summary, "meanFlops"),
    groupPlot(summary, "level"),
    groupPlot(summary, "bin"),
  ].filter((plot): plot is Plot => plot !== null);
}
