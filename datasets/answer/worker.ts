/** The grading worker: runs comparisons one at a time for grader.ts, which kills it on timeout. */
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
