/**
 * A verifier's step scores on the synthetic task, with the exact checker's labels: the record the
 * verifier-quality sweep measures step AUC from, on the very prefixes the searches scored. A
 * `StepScoreLog` wraps the verifier a bench run searches with and appends each prefix the first
 * time it is scored (one JSON line: hashes of the problem and of the prefix, the step index, the
 * checker's label, whether the steps before it were right, the score) to a file, so that a stopped
 * run keeps its record and a resumed one adds to it without counting a prefix twice.
 */
import { createHash } from "node:crypto";
import { appendFileSync } from "node:fs";
import { readFile, truncate } from "node:fs/promises";
import { z } from "zod";
import { InputError } from "../errors.js";
import type { ScoreRequest, StepScores, StepVerifier } from "../policy.js";
import { rocAuc } from "../../verifiers/auc.js";
import { prefixCorrectness } from "../../verifiers/synth-rule.js";

const recordSchema = z.object({
  /** SHA-256 of the problem text, first 16 hex digits. */
  problem: z.string(),
  /** SHA-256 of the problem and the prefix's steps, first 16 hex digits. */
  prefix: z.string(),
  /** The prefix's last step, from 0. */
  step: z.number().int().min(0),
  /** Every step of the prefix is right (the checker's label of the prefix). */
  correct: z.boolean(),
  /** Every step before the last is right. */
  afterCorrect: z.boolean(),
  score: z.number(),
});
export type StepScoreRecord = z.infer<typeof recordSchema>;

const hex16 = (hash: ReturnType<typeof createHash>) => hash.digest("hex").slice(0, 16);

export class StepScoreLog implements StepVerifier {
  private readonly seen: Set<string>;

  private constructor(
    private readonly verifier: StepVerifier,
    readonly file: string,
    private readonly logged: StepScoreRecord[],
  ) {
    this.seen = new Set(logged.map((record) => record.prefix));
  }

  /** Wraps `verifier`, appending to `file` (created if missing; a torn last line is cut off first). */
  static async open(verifier: StepVerifier, file: string): Promise<StepScoreLog> {
    return new StepScoreLog(verifier, file, await readStepScores(file, { repair: true }));
  }

  get name(): string {
    return this.verifier.name;
  }
  get fingerprint(): string | undefined {
    return this.verifier.fingerprint;
  }
  get parameters(): number | null {
    return this.verifier.parameters;
  }

  /** Every prefix logged so far, this run's and earlier ones'. */
  get records(): readonly StepScoreRecord[] {
    return this.logged;
  }

  async scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]> {
    const answers = await this.verifier.scoreSteps(requests, signal);
    const fresh: StepScoreRecord[] = [];
    requests.forEach(({ problem, steps }, index) => {
      const scores = answers[index]?.scores ?? [];
      const problemKey = hex16(createHash("sha256").update(problem));
      const running = createHash("sha256").update(JSON.stringify(problem));
      let correct: boolean[] | null = null;
      steps.forEach((step, k) => {
        running.update(JSON.stringify(step));
        const prefix = hex16(running.copy());
        if (this.seen.has(prefix) || scores[k] === undefined) return;
        this.seen.add(prefix);
        correct ??= prefixCorrectness(problem, steps);
        fresh.push({ problem: problemKey, prefix, step: k, correct: correct[k] as boolean, afterCorrect: k === 0 || (correct[k - 1] as boolean), score: scores[k] });
      });
    });
    if (fresh.length > 0) {
      appendFileSync(this.file, fresh.map((record) => `${JSON.stringify(record)}\n`).join(""));
      this.logged.push(...fresh);
    }
    return answers;
  }

  close(): Promise<void> {
    return this.verifier.close();
  }
}

/**
 * The records of a log file ([] when there is none). A line that is not a record is an error
 * naming the file and line, except a torn last line (no newline after it: a kill while writing),
 * which `repair` cuts off the file and reading alone skips.
 */
export async function readStepScores(file: string, { repair = false } = {}): Promise<StepScoreRecord[]> {
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return "";
    throw error;
  });
  const complete = text.slice(0, text.lastIndexOf("\n") + 1);
  if (repair && complete.length < text.length) await truncate(file, Buffer.byteLength(complete));
  return complete
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line, index) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      const parsed = recordSchema.safeParse(value);
      if (!parsed.success) throw new InputError(`${file}:${index + 1}: not a step score record`);
      return parsed.data;
    });
}

export interface StepAucs {
  /** Right against wrong prefixes, over every prefix logged. */
  pooled: number;
  /**
   * A right against a wrong k-th step of the same problem, both after right earlier steps (the
   * choice a search makes among one problem's candidates), pooled over such pairs; NaN with none.
   */
  withinProblem: number;
  correct: number;
  incorrect: number;
  withinProblemPairs: number;
}

export function stepAucs(records: readonly StepScoreRecord[]): StepAucs {
  const pooled = rocAuc(
    records.map((record) => record.score),
    records.map((record) => record.correct),
  );
  const groups = new Map<string, StepScoreRecord[]>();
  for (const record of records) {
    if (!record.afterCorrect) continue;
    const key = `${record.problem} ${record.step}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [record]);
    else group.push(record);
  }
  let wins = 0;
  let pairs = 0;
  for (const group of groups.values()) {
    const right = group.filter((record) => record.correct).length;
    const wrong = group.length - right;
    if (right === 0 || wrong === 0) continue;
    const auc = rocAuc(
      group.map((record) => record.score),
      group.map((record) => record.correct),
    );
    wins += auc * right * wrong;
    pairs += right * wrong;
  }
  const correct = records.filter((record) => record.correct).length;
  return { pooled, withinProblem: pairs === 0 ? Number.NaN : wins / pairs, correct, incorrect: records.length - correct, withinProblemPairs: pairs };
}
