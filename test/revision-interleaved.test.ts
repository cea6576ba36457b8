/**
 * The interleaved revision layout (models/train/revision_layout.py): a revising branch is fed the
 * previous attempt's step k as forced tokens right before it writes its step k. Checked on the
 * shipped policy's graphs under a config.json that declares the layout.
 */
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComputeMeter } from "../src/meter.js";
import { withSearch } from "../src/search.js";
import { loadPolicy, resolveModel } from "../src/runtime/load.js";
import { readModelDirectory } from "../src/runtime/model-config.js";
import type { ExtendResult, OnnxPolicy } from "../src/runtime/onnx-policy.js";
import { testContext } from "./support/scripted-policy.js";

const INTERLEAVED = { layout: "interleaved", prompt: "<bos>{problem}\n\nRevise:\n\n", injected_line: "> {previous_step}\n" };
const PROBLEM = "Compute (17 + 5) * 3 - 8.";
// One step, so that the second step the model writes is fed the line of an empty step.
const PREVIOUS = "17 + 5 = 22";
const LINES = ["> 17 + 5 = 22\n", "> \n"];
const GREEDY = { temperature: 0, seeds: [0], maxStepTokens: 48 };

/** A model directory with the shipped policy's graphs and tokenizer, and its config.json with `revision` replaced. */
function policyDirWithRevision(revision: unknown): string {
  const shipped = resolveModel("policy");
  const dir = mkdtempSync(join(tmpdir(), "deliberate-interleaved-"));
  for (const file of ["prefill.onnx", "decode.onnx", "tokenizer.json"]) symlinkSync(join(shipped, file), join(dir, file));
  const config = JSON.parse(readFileSync(join(shipped, "config.json"), "utf8")) as { prompt_format: Record<string, unknown> };
  config.prompt_format.revision = revision;
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  return dir;
}

describe("an interleaved reviser", () => {
  let reviser: OnnxPolicy;
  let plain: OnnxPolicy;
  beforeAll(async () => {
    reviser = await loadPolicy(policyDirWithRevision(INTERLEAVED), { threads: 1 });
    plain = await loadPolicy("policy", { threads: 1 });
  });
  afterAll(async () => {
    await reviser.close();
    await plain.close();
  });

  it("is fed each previous step mid-branch exactly as if it had been in the prompt", async () => {
    const branch = await reviser.start({ problem: PROBLEM, previousAttempts: [PREVIOUS] });
    const shipped = readModelDirectory(resolveModel("policy"));
    if (shipped.kind !== "embedded-decoder") throw new Error("not a decoder");
    const bos = shipped.config.bos_token_id;
    let context = "Compute (17 + 5) * 3 - 8.\n\nRevise:\n\n";
    const steps: ExtendResult[] = [];
    for (const line of LINES) {
      const [step] = (await reviser.decode([branch], GREEDY)) as [ExtendResult];
      context += line;
      // The same text, all of it in the prompt of an ordinary branch.
      const reference = await plain.startFromTokens([bos, ...(await plain.tokenize(context, false))]);
      const [expected] = (await plain.decode([reference], GREEDY)) as [ExtendResult];
      reference.release();
      expect(step.injectedTokens).toBe(line.length);
      expect(step.tokenIds).toEqual(expected.tokenIds);
      step.logprobs.forEach((logprob, i) => expect(logprob).toBeCloseTo(expected.logprobs[i] as number, 4));
      steps.push(step);
      context += step.fullText;
      if (branch.finished) break;
    }
    // The shipped model writes at least two steps here, so the empty line past the previous attempt is checked too.
    expect(steps).toHaveLength(LINES.length);
    expect(branch.steps).toEqual(steps.map((step) => step.text));
    expect(branch.steps.join("\n")).not.toContain(">");
    expect(branch.generatedTokens).toBe(steps.reduce((sum, step) => sum + step.tokens, 0));
    branch.release();
  });

  it("has the meter count the injected lines as prefilled tokens, not generated ones", async () => {
    const meter = new ComputeMeter();
    const context = testContext(reviser, null, { meter, sampling: { temperature: 0, topP: 1 }, limits: { maxSteps: 2, maxStepTokens: 48 } });
    const path = await withSearch(PROBLEM, context, "last", async (search) => {
      const started = await search.start({ problem: PROBLEM, previousAttempts: [PREVIOUS] });
      await search.extend([started]);
      await search.extend([started]);
      return { promptTokens: started.branch.promptTokens, generatedTokens: started.branch.generatedTokens };
    });
    const injected = LINES[0]!.length + LINES[1]!.length;
    expect(path.promptTokens).toBe(1 + "Compute (17 + 5) * 3 - 8.\n\nRevise:\n\n".length);
    expect(meter.prefilledTokens).toBe(path.promptTokens + injected);
    expect(meter.generatedTokens).toBe(path.generatedTokens);
    expect(meter.flops).toBe(2 * reviser.parameters * (path.promptTokens + injected + path.generatedTokens));
  });

  it("refuses to render a revision prompt as token ids alone", async () => {
    await expect(reviser.renderPrompt({ problem: PROBLEM, previousAttempts: [PREVIOUS] })).rejects.toThrow(/interleaved layout/);
    await expect(reviser.renderPrompt({ problem: PROBLEM })).resolves.toEqual(await plain.renderPrompt({ problem: PROBLEM }));
  });
});

describe("config.json's prompt_format.revision", () => {
  it.each([
    ["an unknown layout", { ...INTERLEAVED, layout: "sideways" }],
    ["an injected line without {previous_step}", { ...INTERLEAVED, injected_line: "> \n" }],
    ["an unknown field", { ...INTERLEAVED, window: 64 }],
    ["a number", 3],
  ])("is refused with %s, naming the field", (_what, revision) => {
    expect(() => readModelDirectory(policyDirWithRevision(revision))).toThrow(/config\.json: prompt_format\.revision/);
  });

  it("takes the interleaved layout of the shipped policy and a flat template string", () => {
    const shipped = readModelDirectory(resolveModel("policy"));
    if (shipped.kind !== "embedded-decoder") throw new Error("not a decoder");
    expect(shipped.config.prompt_format.revision).toEqual(INTERLEAVED);
    const flat = "<bos>{problem}\n\nPrevious attempt: {previous_steps_joined_with ' | '}\n\nRevised solution:\n\n";
    const flatDir = readModelDirectory(policyDirWithRevision(flat));
    if (flatDir.kind !== "embedded-decoder") throw new Error("not a decoder");
    expect(flatDir.config.prompt_format.revision).toBe(flat);
  });
});
