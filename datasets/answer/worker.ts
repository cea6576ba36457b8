/**
 * The grading worker: runs comparisons one at a time for grader.ts, which kills it on timeout. It
 * posts "ready" once its libraries are loaded and warmed up (the first comparison builds the
 * compute engine), so that the grader's time limit measures comparisons, not a cold start.
 */
import { parentPort } from "node:worker_threads";
import { compareAnswers, type CompareOptions } from "./compare.js";

export interface GradeRequest {
  id: number;
  pred: string;
  gold: string;
  options: CompareOptions;
}

parentPort?.on("message", (request: GradeRequest) => {
  try {
    parentPort?.postMessage({ id: request.id, verdict: compareAnswers(request.pred, request.gold, request.options) });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    parentPort?.postMessage({ id: request.id, verdict: { equal: false, reason: `error: ${message}`, pred: null, gold: null } });
  }
});

try {
  compareAnswers("\\frac{1}{2}", "0.5");
} catch {
  // A warm-up failure shows in the first real comparison.
}
parentPort?.postMessage({ ready: true });
