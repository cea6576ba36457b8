/**
 * The verifier-quality sweep's report: what search gains over one sample as a function of the
 * verifier's step AUC. Simulated verifiers (the synthetic task's exact checker with noise calibrated
 * to a target AUC) trace the curve; a learned verifier (the embedded PRM) is placed on it at its own
 * step AUC, measured on the prefixes its searches scored. Every strategy runs at one budget on the
 * same problems and policy seeds; its gain is its accuracy minus one sample's (pass@1), with a paired
 * bootstrap interval over problems. Written as verifier-sweep.md, verifier-sweep.json and
 * plots/verifier-sweep.svg.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { TopLevelSpec } from "vega-lite";
import type { StepAucs } from "../bench/step-score-log.js";
import { writeFileAtomically } from "../files.js";
import { loadRuns } from "./load.js";
import { renderSvg } from "./render.js";
import { bootstrapMeanCI, DEFAULT_BOOTSTRAP, perProblem, type BootstrapOptions } from "./stats.js";
import { markdownTable } from "./write.js";

export interface SweepSetting {
  /** `simulated`: the checker with calibrated noise, not a model; `learned`: a model's scores. */
  kind: "simulated" | "learned";
  /** The --verifier value, e.g. rule@0.8 or prm. */
  verifier: string;
  /** The AUC the simulation was calibrated to; null for a learned verifier. */
  targetAuc: number | null;
  /** The bench run of the strategies with this verifier. */
  runDir: string;
  /** Step AUCs measured on the prefixes this setting's searches scored. */
  aucs: StepAucs;
  /** The allocation table compute-optimal ran with; null when no configuration allocates. */
  allocation: AllocationUsed | null;
}

/** An allocation table a setting's compute-optimal ran with. */
export interface AllocationUsed {
  /** The table's file. */
  file: string;
  /**
   * `calibrated`: by the sweep, with this setting's verifier (--calibrate-n); `given`: --allocation;
   * `shipped`: models/allocation.json, calibrated with the embedded PRM's scores.
   */
  source: "calibrated" | "given" | "shipped";
}

/** The sweep's own calibration of a table per verifier (--calibrate-n), the same for every setting. */
export interface SweepCalibration {
  /** Synthetic calibration-split problems. */
  problems: number;
  /** Samples of the difficulty estimate (compute-optimal draws as many before it runs the table's choice). */
  samples: number;
  budgets: number[];
  /** The labels of the grid's configurations that run at one of the budgets at least. */
  grid: string[];
}

export interface StrategyGain {
  strategy: string;
  accuracy: number;
  /** Accuracy minus pass@1 (fractions), over the problems both ran, with its paired 95% bootstrap interval. */
  gain: number;
  gainLow: number;
  gainHigh: number;
  problems: number;
}

export interface SweepPoint extends Omit<SweepSetting, "runDir"> {
  gains: StrategyGain[];
}

export interface VerifierSweep {
  budget: number;
  /** One sample per problem, no verifier involved. */
  passAt1: { accuracy: number; ciLow: number; ciHigh: number; problems: number };
  strategies: string[];
  points: SweepPoint[];
  /** Null when compute-optimal took a table calibrated elsewhere (see each point's `allocation`). */
  calibration: SweepCalibration | null;
  bootstrap: BootstrapOptions;
}

const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const correctness = (item: { correct: boolean }) => (item.correct ? 1 : 0);

/**
 * The sweep's numbers from its runs: `passAt1Dir` (one sample per problem) and one run per setting,
 * each with the configurations `strategies` (labels, in the order of the table's columns) at `budget`.
 * `calibration` is recorded with them.
 */
export async function measureVerifierSweep(
  passAt1Dir: string,
  settings: readonly SweepSetting[],
  strategies: readonly string[],
  budget: number,
  calibration: SweepCalibration | null = null,
  bootstrap: BootstrapOptions = DEFAULT_BOOTSTRAP,
): Promise<VerifierSweep> {
  const single = perProblem((await loadRuns([passAt1Dir])).results, correctness);
  const singleValues = [...single.values()];
  const [ciLow, ciHigh] = bootstrapMeanCI(singleValues, bootstrap);
  const points: SweepPoint[] = [];
  for (const { runDir, ...setting } of settings) {
    const { results } = await loadRuns([runDir]);
    const ran = strategies.filter((strategy) => results.some((result) => result.strategy === strategy && result.budget === budget));
    const gains = ran.map((strategy) => {
      const accuracy = perProblem(
        results.filter((result) => result.strategy === strategy && result.budget === budget),
        correctness,
      );
      const differences = [...accuracy].filter(([id]) => single.has(id)).map(([id, value]) => value - (single.get(id) as number));
      const [gainLow, gainHigh] = bootstrapMeanCI(differences, bootstrap);
      return { strategy, accuracy: mean([...accuracy.values()]), gain: mean(differences), gainLow, gainHigh, problems: differences.length };
    });
    points.push({ ...setting, gains });
  }
  return { budget, passAt1: { accuracy: mean(singleValues), ciLow, ciHigh, problems: singleValues.length }, strategies: [...strategies], points, calibration, bootstrap };
}

const points = (fraction: number) => (fraction * 100).toFixed(1);
const signedPoints = (fraction: number) => `${fraction >= 0 ? "+" : "−"}${points(Math.abs(fraction))}`;
const aucText = (auc: number) => (Number.isNaN(auc) ? "–" : auc.toFixed(3));

/** "simulated (rule@0.8)" or "learned (prm)". */
function settingName(point: Pick<SweepPoint, "kind" | "verifier">): string {
  return `${point.kind} (${point.verifier})`;
}

/** The table a point's compute-optimal ran with, for its cell. */
function allocationText(allocation: AllocationUsed | null): string {
  if (allocation === null) return "–";
  if (allocation.source === "shipped") return "shipped (models/allocation.json)";
  return allocation.source === "calibrated" ? `own calibration (${allocation.file})` : allocation.file;
}

export function sweepTable(sweep: VerifierSweep): string {
  const gainCell = (point: SweepPoint, strategy: string) => {
    const gain = point.gains.find((entry) => entry.strategy === strategy);
    return gain === undefined ? "–" : `${points(gain.accuracy)}% (${signedPoints(gain.gain)}, ${signedPoints(gain.gainLow)} to ${signedPoints(gain.gainHigh)})`;
  };
  // The column only where some point ran compute-optimal.
  const allocation = sweep.points.some((point) => point.allocation !== null);
  return markdownTable({
    header: [
      "verifier",
      "target step AUC",
      "measured step AUC",
      "within-problem AUC",
      ...sweep.strategies.map((strategy) => `${strategy} N=${sweep.budget}: accuracy (gain, 95% CI)`),
      ...(allocation ? ["allocation table"] : []),
    ],
    numeric: [false, true, true, true, ...sweep.strategies.map(() => true), ...(allocation ? [false] : [])],
    rows: sweep.points.map((point) => [
      settingName(point),
      point.targetAuc === null ? "–" : String(point.targetAuc),
      aucText(point.aucs.pooled),
      aucText(point.aucs.withinProblem),
      ...sweep.strategies.map((strategy) => gainCell(point, strategy)),
      ...(allocation ? [allocationText(point.allocation)] : []),
    ]),
  });
}

/** Where a point sits on the plot's AUC axis: a simulation at its target, a learned verifier at its measured within-problem AUC. */
function plotAuc(point: SweepPoint): number {
  return point.targetAuc ?? point.aucs.withinProblem;
}

/** On the AUC axis, strategies are nudged apart by this much each so that their CI bars do not overlap. */
const DODGE = 0.006;

export function sweepPlotSpec(sweep: VerifierSweep): TopLevelSpec {
  const dodge = (strategy: string) => (sweep.strategies.indexOf(strategy) - (sweep.strategies.length - 1) / 2) * DODGE;
  const rows = sweep.points.flatMap((point) =>
    point.gains.map((gain) => ({
      auc: plotAuc(point),
      x: plotAuc(point) + dodge(gain.strategy),
      kind: point.kind,
      verifier: settingName(point),
      strategy: gain.strategy,
      gain: gain.gain * 100,
      low: gain.gainLow * 100,
      high: gain.gainHigh * 100,
    })),
  );
  // From 0.5 (chance), or lower where a learned verifier ranks worse than chance, to 1.
  const lowest = Math.min(0.5, ...sweep.points.map(plotAuc).filter((auc) => !Number.isNaN(auc)));
  const x = {
    field: "x",
    type: "quantitative" as const,
    title: "verifier step AUC (learned: within-problem, measured)",
    scale: { domain: [Math.floor(lowest * 20) / 20 - 0.02, 1.02] },
    axis: { format: ".2f" },
  };
  const y = { field: "gain", type: "quantitative" as const, title: `gain over one sample at N=${sweep.budget} (points)` };
  const color = { field: "strategy", type: "nominal" as const, title: "strategy" };
  const simulated = { filter: "datum.kind === 'simulated'" };
  const learned = { filter: "datum.kind === 'learned'" };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "Search gain against verifier quality",
      subtitle: ["lines: simulated verifiers (exact checker + calibrated noise)", "diamonds: the learned verifier; bars: 95% paired bootstrap CI"],
    },
    width: 520,
    height: 320,
    layer: [
      // No gain: one dashed line across.
      { data: { values: [{ zero: 0 }] }, mark: { type: "rule", color: "#999", strokeDash: [4, 4] }, encoding: { y: { field: "zero", type: "quantitative" } } },
      {
        data: { values: rows },
        encoding: { x, color },
        layer: [
          { transform: [simulated], mark: { type: "line", strokeWidth: 2 }, encoding: { y } },
          { mark: { type: "rule", strokeWidth: 1.5, opacity: 0.6 }, encoding: { y: { field: "low", type: "quantitative", title: y.title }, y2: { field: "high" } } },
          { transform: [simulated], mark: { type: "point", filled: true, size: 55, opacity: 1 }, encoding: { y } },
          { transform: [learned], mark: { type: "point", shape: "diamond", filled: true, size: 140, opacity: 1, stroke: "black", strokeWidth: 1 }, encoding: { y } },
        ],
      },
    ],
    config: { font: "Helvetica, Arial, sans-serif", background: "white", padding: 12, title: { anchor: "start", subtitleColor: "#555" } },
  };
}

export function sweepMarkdown(sweep: VerifierSweep, command: string): string {
  const { passAt1 } = sweep;
  return [
    "# Verifier-quality sweep",
    `\`${command}\``,
    `One sample (pass@1): ${points(passAt1.accuracy)}% (95% CI ${points(passAt1.ciLow)}–${points(passAt1.ciHigh)}) over ${passAt1.problems} problems. ` +
      `Each cell: accuracy at N=${sweep.budget}, and its gain over one sample in points with a paired 95% bootstrap interval over problems ` +
      `(${sweep.bootstrap.resamples} resamples, seed ${sweep.bootstrap.seed}).`,
    sweepTable(sweep),
    "Simulated verifiers are not models: each is the synthetic task's exact step checker with binormal noise calibrated so that its step AUC " +
      "(right against wrong prefixes) is the target in expectation. Measured step AUC: right against wrong prefixes over every prefix that " +
      "setting's searches scored, labelled by the checker; within-problem AUC: a right against a wrong k-th step of the same problem after right " +
      "earlier steps, the choice a search makes. The learned verifier is plotted at its within-problem AUC." +
      allocationNote(sweep),
    "![Search gain against verifier quality](plots/verifier-sweep.svg)",
  ].join("\n\n") + "\n";
}

/** Where compute-optimal's difficulty bins and choices came from, as a sentence after a space; empty when no point ran it. */
function allocationNote({ calibration, points: settings }: VerifierSweep): string {
  if (calibration !== null) {
    return (
      " Compute-optimal ran with a table calibrated by the sweep with each verifier's own scores (column \"allocation table\"): " +
      `the difficulty pass (${calibration.samples} samples per problem) and the grid ${calibration.grid.join(", ")} at budgets ${calibration.budgets.join(", ")} ` +
      `on ${calibration.problems} synthetic calibration problems, as \`deliberate calibrate\` does, so that its difficulty bins and choices come from that verifier's scores.`
    );
  }
  const sources = new Set(settings.flatMap((point) => point.allocation?.source ?? []));
  if (sources.has("shipped")) {
    return (
      " Compute-optimal takes its difficulty bins and configurations from the shipped allocation table, which was calibrated with the learned " +
      "PRM's scores; with a simulated verifier its bins are therefore off-calibration (--calibrate-n calibrates a table per verifier)."
    );
  }
  return sources.has("given") ? " Compute-optimal takes its difficulty bins and configurations from the given table (column \"allocation table\"), the same for every verifier." : "";
}

export interface WrittenSweep {
  markdown: string;
  json: string;
  plot: string;
}

export async function writeVerifierSweep(sweep: VerifierSweep, out: string, command: string): Promise<WrittenSweep> {
  await mkdir(join(out, "plots"), { recursive: true });
  const written = { markdown: join(out, "verifier-sweep.md"), json: join(out, "verifier-sweep.json"), plot: join(out, "plots", "verifier-sweep.svg") };
  const svg = await renderSvg(sweepPlotSpec(sweep));
  await Promise.all([
    writeFileAtomically(written.markdown, "--out", sweepMarkdown(sweep, command)),
    writeFileAtomically(written.json, "--out", `${JSON.stringify({ command, ...sweep }, (_key, value: unknown) => (Number.isNaN(value) ? null : value), 2)}\n`),
    writeFileAtomically(written.plot, "--out", svg),
  ]);
  return written;
}
