/** The public library API of deliberate. */
export { Random } from "./random.js";
export { InputError } from "./errors.js";

// Answers: extraction and MATH-style equivalence.
export { extractAnswer, answerFromText, lastBoxed, type AnswerFallback, type ExtractOptions } from "../datasets/answer/extract.js";
export { normalizeAnswer, type NormalizedAnswer } from "../datasets/answer/normalize.js";
export { compareAnswers, type CompareOptions, type Verdict } from "../datasets/answer/compare.js";
export { Grader, isEquivalent, type GraderOptions } from "../datasets/answer/grader.js";

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
