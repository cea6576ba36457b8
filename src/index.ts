/** The public library API of deliberate. */
export { Random } from "./random.js";
export { InputError } from "./errors.js";

// Answers: extraction and MATH-style equivalence.
export { extractAnswer, answerFromText, lastBoxed, type AnswerFallback, type ExtractOptions } from "../datasets/answer/extract.js";
export { normalizeAnswer, type NormalizedAnswer } from "../datasets/answer/normalize.js";
export { compareAnswers, type CompareOptions, type Verdict } from "../datasets/answer/compare.js";
export { BENCH_GRADER_OPTIONS, Grader, GradingError, gradingFailureMessage, isEquivalent, type GraderOptions } from "../datasets/answer/grader.js";

// Datasets: MATH-style JSONL, named sources with a download cache, filters.
export type { Problem, Dataset } from "../datasets/problem.js";
export { readJsonl, type BadLine, type OnBadLine, type JsonlOptions, type JsonlRecord } from "../datasets/jsonl.js";
export { MathJsonlDataset, loadMathFile, mathLineSchema, type LoadResult, type MathLoadOptions } from "../datasets/math.js";
export { applyFilter, collectProblems, problemMatcher, type ProblemFilter } from "../datasets/filter.js";
export {
  SOURCE_NAMES,
  DownloadError,
  loadNamedDataset,
  openNamedDataset,
  resolveDatasetFile,
  fetchDataset,
  cachedFilePath,
  cacheDirectory,
  type SourceName,
  type SourceOptions,
  type FetchResult,
} from "../datasets/sources.js";

// The synthetic MATH-shaped task and its rule step checker.
export { generateSynth, splitOf, SPLITS, SUBJECTS, type SynthProblem, type SynthOptions, type Split, type Subject } from "../datasets/synth/generate.js";
export { checkSolution, splitSteps, type SolutionCheck, type StepCheck } from "../datasets/synth/check.js";
export { labelJsonl, labelSample } from "../datasets/synth/label.js";

// The seams between strategies and models, and compute accounting.
export type { Branch, ExtendOptions, Policy, PolicyPrompt, RoutingCount, SamplingOptions, ScoreRequest, StepResult, StepScores, StepVerifier, StopReason } from "./policy.js";
export { ComputeMeter, scoreCounted, type ComputeReport, type ModelSpend } from "./meter.js";

// The ONNX runtime: embedded models and Hugging Face exports, in worker threads.
export { loadPolicy, loadVerifier, resolveModel, EMBEDDED_MODELS, type EmbeddedModel, type LoadOptions } from "./runtime/load.js";
export { OnnxPolicy, type DecodeOptions, type DecodeBatchStats, type ExtendResult, type TokenLogprob } from "./runtime/onnx-policy.js";
export type { RecursionInfo } from "./runtime/model-worker.js";
export { OnnxStepVerifier } from "./runtime/onnx-verifier.js";
export { DEVICES, type Device } from "./runtime/session.js";

// Served models over HTTP: a policy on vLLM's completions API, a PRM on its /pooling API.
export { connectPolicy, PROMPT_MODES, ServedPolicy, type PromptMode, type ServedPolicyOptions } from "./served/policy.js";
export { connectVerifier, ServedStepVerifier, VERIFIER_FORMATS, type ServedVerifierOptions, type VerifierFormat } from "./served/verifier.js";
export { Endpoints, HttpStatusError, type HttpOptions } from "./served/http.js";
export { promptToMessages, messagesToPrompt, type ChatMessage } from "./served/messages.js";
export { renderQwenPrmInput, parseQwenPrmInput } from "./served/qwen-prm.js";

// deliberate serve: the loaded models behind vLLM's OpenAI-compatible API, and the strategies as OpenAI-compatible chat models.
export {
  createServer,
  startServer,
  buildServer,
  serviceOptionsSchema,
  type ServeOptions,
  type ServiceOptions,
  type BuiltServer,
  type RunningServer,
} from "./serve/server.js";
export { PrefixCache, type PrefixCacheLimits, type PrefixCacheStats } from "./serve/prefix-cache.js";

// Search strategies and verifiers.
export { solve, type SolveOptions, type SolveResult } from "./solve.js";
export { Search, SearchPath, SearchTree, highestScored, type Scorable } from "./search.js";
export {
  requireVerifier,
  strategyParams,
  limitsSchema,
  samplingSchema,
  budgetSchema,
  aggregationSchema,
  selectionSchema,
  type Strategy,
  type StrategyContext,
  type StrategyResult,
  type Candidate,
  type SearchNode,
  type FileParam,
  type SearchProgress,
  type Limits,
  type Sampling,
} from "./strategy.js";
export { STRATEGIES, STRATEGY_NAMES, getStrategy } from "../strategies/registry.js";
export { bestOfN, bestOfNParams, type BestOfNParams } from "../strategies/best-of-n.js";
export { beam, beamParams, type BeamParams } from "../strategies/beam.js";
export { lookahead, lookaheadParams, type LookaheadParams } from "../strategies/lookahead.js";
export { dvts, dvtsParams, type DvtsParams } from "../strategies/dvts.js";
export { revision, revisionParams, revisionsPerChain, WITHIN_CHAIN, type RevisionParams } from "../strategies/revision.js";
export { AGGREGATIONS, aggregateScores, outcomeScore, type Aggregation } from "../verifiers/aggregate.js";
export {
  SELECTIONS,
  selectCandidate,
  groupByAnswer,
  highestScore,
  cachedEquivalence,
  type Selection,
  type Equivalence,
  type Voter,
  type AnswerGroup,
} from "../verifiers/select.js";
export { solutionSteps, splitSolution } from "../verifiers/steps.js";
export { scoreOutcomes } from "../verifiers/outcome.js";
export { prefixCorrectness, SynthRuleVerifier } from "../verifiers/synth-rule.js";
export { SimulatedRuleVerifier, separationForAuc } from "../verifiers/simulated-rule.js";
export { rocAuc } from "../verifiers/auc.js";

// Benchmarks and reports.
export { runBench, cellAccuracy, gradeResult, loadBenchProblems, workItems, shardOf, type RunBenchOptions, type BenchSummary, type AccuracyCell, type WorkItem } from "./bench/run.js";
export { parseBenchConfig, resolveBenchConfig, readConfigFile, benchConfigSchema, DATASETS, type BenchConfig, type Experiment, type RunSettings, type StrategyConfig } from "./bench/config.js";
export { readRunResults, resultsFiles, CONFIG_FILE } from "./bench/store.js";
export { resultSchema, computeSchema, workItemKey, isGradingFailure, type BenchResult } from "./bench/results.js";
export { writeReport, type ReportOptions, type WrittenReport } from "./report/report.js";
export { summarize, bootstrapMeanCI, type Summary, type Cell, type GroupCell, type Win } from "./report/stats.js";
export { loadRuns } from "./report/load.js";
export { measureEfficiency, chooseReference, compareWithReference, type Efficiency, type EfficiencyRow, type Bound, type RatioInterval } from "./report/efficiency.js";
export { StepScoreLog, readStepScores, stepAucs, type StepScoreRecord, type StepAucs } from "./bench/step-score-log.js";
export { measureVerifierSweep, writeVerifierSweep, type VerifierSweep, type SweepSetting, type SweepPoint, type StrategyGain } from "./report/verifier-sweep.js";

// Compute-optimal allocation.
export { computeOptimal, computeOptimalParams, type ComputeOptimalParams } from "../strategies/compute-optimal.js";
export {
  allocationTableSchema,
  parseAllocationTable,
  loadAllocationTable,
  buildAllocationTable,
  lookupEntry,
  spreadAcrossBins,
  binOfScore,
  quantileEdges,
  type AllocationTable,
  type AllocationEntry,
  type CalibrationOutcome,
} from "./allocation/table.js";
export {
  calibrate,
  parseCalibrateConfig,
  summarizeBins,
  DEFAULT_GRID,
  DEFAULT_BUDGETS,
  type CalibrateConfig,
  type CalibrateOptions,
  type Calibration,
  type BinSummary,
  type GridEntry,
} from "./calibration/calibrate.js";
export { runDifficultyPass } from "./calibration/difficulty.js";
export { readOraclePassRates, difficultyRecordSchema, DIFFICULTY_FILE, type DifficultyRecord } from "./bench/difficulty-file.js";
