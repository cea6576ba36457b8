import { mkdtempSync, readFileSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Branch } from "../src/policy.js";
import { DecoderEngine } from "../src/runtime/decoder-engine.js";
import { EmbeddedGraphs, HuggingFaceGraphs } from "../src/runtime/graphs.js";
import { loadPolicy, loadVerifier, resolveModel } from "../src/runtime/load.js";
import { fingerprintModel, readModelDirectory } from "../src/runtime/model-config.js";
import type { DecodeOptions, ExtendResult, OnnxPolicy } from "../src/runtime/onnx-policy.js";
import type { OnnxStepVerifier } from "../src/runtime/onnx-verifier.js";
import { SAMPLE_PROBLEMS } from "./support/problems.js";

interface DecoderGolden {
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
}


describe.each(["policy", "baseline"])("the embedded %s decodes", (name) => {
  it("a fixed prompt greedily to the golden tokens written by the export", async () => {
    const model = readModelDirectory(resolveModel(name));
    if (model.kind !== "embedded-decoder") throw new Error("not a decoder");
    const golden = JSON.parse(readFileSync(join(model.dir, "golden.json"), "utf8")) as DecoderGolden;
    const graphs = await EmbeddedGraphs.open(model.dir, model.config, { device: "cpu", threads: 1 });
    const engine = new DecoderEngine(graphs, new Tokenizer(model.tokenizer as object, {}), {
      stepDelimiter: model.config.step_delimiter,
      eosTokenIds: [model.config.eos_token_id],
      maxSequenceTokens: 4096,
      maxStateBytes: 2 ** 30,
    });
    await engine.start(0, golden.prompt_ids);
    const generated: number[] = [];
    while (generated.length < golden.greedy_ids.length) {
      const [step] = await engine.extend([{ branch: 0, seed: 0, temperature: 0, maxStepTokens: golden.greedy_ids.length - generated.length }]);
      generated.push(...(step?.tokenIds ?? []));
      if (step?.stopReason === "eos" || step?.stopReason === "max-length") break;
    }
    expect(generated).toEqual(golden.greedy_ids.slice(0, generated.length));
    expect(generated.length).toBe(golden.greedy_ids.length);
    await engine.close();
  });
});

describe("the ONNX policy", () => {
  let policy: OnnxPolicy;
  beforeAll(async () => {
    policy = await loadPolicy("policy", { threads: 1 });
  });
  afterAll(() => policy.close());

  const solve = async (branches: Branch[], seeds: (i: number) => number, temperature = 0) => {
    for (let step = 0; step < 8 && branches.some((b) => !b.finished); step++) {
      const live = branches.filter((b) => !b.finished);
      await policy.extend(live, { temperature, seeds: live.map((_, i) => seeds(i)), maxStepTokens: 48 });
    }
    return branches.map((b) => b.steps.join(" | "));
  };

  it("gives the same tokens batched over 8 prompts as decoding each alone", async () => {
    const together = await Promise.all(SAMPLE_PROBLEMS.map((problem) => policy.start({ problem })));
    const batched = await solve(together, () => 0);
    const alone: string[] = [];
    for (const problem of SAMPLE_PROBLEMS) alone.push(...(await solve([await policy.start({ problem })], () => 0)));
    expect(batched).toEqual(alone);
    expect(new Set(batched).size).toBeGreaterThan(1);
  });

  it("samples bit-identical steps (tokens and log-probabilities) in a batch and alone, so a server's batching cannot change a seeded step", async () => {
    const together = await Promise.all(SAMPLE_PROBLEMS.map((problem) => policy.start({ problem })));
    const alone = await Promise.all(SAMPLE_PROBLEMS.map((problem) => policy.start({ problem })));
    for (let step = 0; step < 2; step++) {
      const seeds = SAMPLE_PROBLEMS.map((_, i) => 100 * step + i);
      const batched = await policy.decode(together, { temperature: 1, seeds, maxStepTokens: 48 });
      for (const [i, branch] of alone.entries()) {
        const [single] = await policy.decode([branch], { temperature: 1, seeds: [seeds[i] as number], maxStepTokens: 48 });
        expect(single?.tokenIds).toEqual(batched[i]?.tokenIds);
        expect(single?.logprobs).toEqual(batched[i]?.logprobs);
      }
    }
    for (const branch of [...together, ...alone]) branch.release();
  });

  it("forks cheaply: the same seed continues identically, other seeds differently, the parent unchanged", async () => {
    // A problem hard enough for the policy (ladder 2, level 5) that its samples differ.
    const parent = await policy.start({ problem: "Compute (512 * 24 + 571) * 8 - 320 + 42." });
    await policy.extend([parent], { temperature: 0, seeds: [0], maxStepTokens: 48 });
    const before = [...parent.steps];
    const prefilled = parent.promptTokens;
    const forks = Array.from({ length: 10 }, () => parent.fork());
    const run = (branches: Branch[], seeds: number[]) => policy.extend(branches, { temperature: 1.5, seeds, maxStepTokens: 48 });
    const [a, b] = await run([forks[0] as Branch, forks[1] as Branch], [7, 7]);
    expect(a?.text).toBe(b?.text);
    expect(a?.logprobs).toEqual(b?.logprobs);
    // A trained model can be sure of one step; over the rest of the solution, different seeds diverge.
    const others = forks.slice(2);
    for (let step = 0; step < 8 && others.some((fork) => !fork.finished); step++) {
      const live = others.filter((fork) => !fork.finished);
      await run(live, live.map((_, i) => 100 * step + i + 1));
    }
    expect(new Set(others.map((fork) => fork.steps.join(" | "))).size).toBeGreaterThan(1);
    expect(parent.steps).toEqual(before);
    const [again] = await run([parent], [7]);
    expect(again?.text).toBe(a?.text);
    expect(forks.map((fork) => fork.promptTokens)).toEqual(forks.map(() => prefilled));
    for (const fork of forks) fork.release();
  });

  it("keeps each prompt's prefill through a 10-step beam-style search, and frees released branches", async () => {
    const { liveBranches: liveBefore } = await policy.stats();
    const beams = await Promise.all(SAMPLE_PROBLEMS.slice(0, 3).map((problem) => policy.start({ problem })));
    const problemOf = new Map<Branch, number>();
    const fork = (branch: Branch) => {
      const child = branch.fork();
      problemOf.set(child, problemOf.get(branch) as number);
      return child;
    };
    beams.forEach((beam, i) => problemOf.set(beam, i));
    let frontier: Branch[] = beams.flatMap((beam) => [beam, fork(beam)]);
    for (let round = 0; round < 10; round++) {
      const children = frontier.flatMap((branch) => [fork(branch), fork(branch)]);
      for (const branch of frontier) branch.release();
      await policy.extend(children, { temperature: 1, seeds: children.map((_, i) => round * 100 + i), maxStepTokens: 32 });
      // Keep two per prompt, as a beam of width 2 would.
      frontier = beams.flatMap((_, i) => children.filter((child) => problemOf.get(child) === i).slice(0, 2));
      for (const child of children) if (!frontier.includes(child)) child.release();
    }
    for (const branch of frontier) expect(branch.promptTokens).toBe(beams[problemOf.get(branch) as number]?.promptTokens);
    expect((await policy.stats()).liveBranches).toBe(liveBefore + frontier.length);
    for (const branch of frontier) branch.release();
    expect((await policy.stats()).liveBranches).toBe(liveBefore);
  });

  it("starts a branch from token ids, and appends a suffix to one, to the state a prefill of the whole prompt gives", async () => {
    const prompt = { problem: "Compute (17 + 5) * 3 - 8." };
    const ids = await policy.renderPrompt(prompt);
    const fromPrompt = await policy.start(prompt);
    const fromIds = await policy.startFromTokens(ids);
    const cut = Math.floor(ids.length / 2);
    const appended = await policy.startFromTokens(ids.slice(0, cut));
    await policy.appendTokens(appended, ids.slice(cut));
    const [expected, fromIdsStep, appendedStep] = (await policy.decode([fromPrompt, fromIds, appended], { temperature: 0, seeds: [0, 0, 0], maxStepTokens: 48 })) as [
      ExtendResult,
      ExtendResult,
      ExtendResult,
    ];
    expect(expected.tokenIds.length).toBeGreaterThan(3);
    expect(fromIdsStep.tokenIds).toEqual(expected.tokenIds);
    expect(fromIdsStep.logprobs).toEqual(expected.logprobs);
    // Token-by-token decoding of the suffix runs other kernels than the prefill graph: equal up to float rounding.
    expect(appendedStep.tokenIds).toEqual(expected.tokenIds);
    appendedStep.logprobs.forEach((logprob, i) => expect(logprob).toBeCloseTo(expected.logprobs[i] as number, 4));
    for (const branch of [fromPrompt, fromIds, appended]) expect(branch.promptTokens).toBe(ids.length);
    for (const branch of [fromPrompt, fromIds, appended]) branch.release();
  });

  it("decodes with any stop strings (or none), naming the one met, with top log-probabilities", async () => {
    const ids = await policy.renderPrompt({ problem: "Compute 12 * 7 + 3." });
    const decodeWith = async (options: Partial<DecodeOptions>) => {
      const branch = await policy.startFromTokens(ids);
      const [result] = await policy.decode([branch], { temperature: 0, seeds: [0], maxStepTokens: 40, ...options });
      branch.release();
      return result as ExtendResult;
    };
    const delimited = await decodeWith({ topLogprobs: 3 });
    expect(delimited.stopString).toBe("\n\n");
    expect(delimited.fullText.endsWith("\n\n")).toBe(true);
    expect(delimited.text).toBe(delimited.fullText.trim());
    expect(delimited.tokenLogprobs).toHaveLength(delimited.tokens);
    const top = delimited.tokenLogprobs?.[0]?.top ?? [];
    expect(top).toHaveLength(3);
    // Greedy: the sampled token is the most likely one.
    expect(top[0]?.token).toBe(delimited.tokenIds[0]);
    expect(top[0]?.logprob).toBeCloseTo(delimited.logprobs[0] as number, 6);
    expect(top[0]?.logprob).toBeGreaterThanOrEqual(top[1]?.logprob as number);
    // With no stop strings the same greedy decoding runs past the delimiter to the token limit.
    const unstopped = await decodeWith({ stop: [] });
    expect(unstopped.stopString).toBeNull();
    expect(unstopped.stopReason).toBe("max-tokens");
    expect(unstopped.tokenIds.slice(0, delimited.tokens)).toEqual(delimited.tokenIds);
    expect(unstopped.tokens).toBe(40);
    const stopped = await decodeWith({ stop: ["*"] });
    expect(stopped.stopString).toBe("*");
    expect(stopped.fullText.endsWith("*")).toBe(true);
    expect(stopped.fullText.slice(0, -1)).not.toContain("*");
  });

  it("keeps the recurrent state constant in length past the attention window", async () => {
    const [at64, at256, at1024] = (await policy.stats([64, 256, 1024])).stateBytesAt;
    expect(at64).toBe(at256);
    expect(at256).toBe(at1024);
  });
});

describe("memory cap", () => {
  it("refuses with a clear error instead of growing without bound", async () => {
    const policy = await loadPolicy("policy", { threads: 1, maxStateBytes: 200_000 });
    try {
      const root = await policy.start({ problem: "Compute 17 + 5." });
      const forks = Array.from({ length: 8 }, () => root.fork());
      await expect(policy.extend(forks, { temperature: 0, seeds: forks.map(() => 0), maxStepTokens: 8 })).rejects.toThrow(/cap of 0\.2 MiB/);
    } finally {
      await policy.close();
    }
  });
});

describe("the ONNX PRM", () => {
  let verifier: OnnxStepVerifier;
  beforeAll(async () => {
    verifier = await loadVerifier("prm", { threads: 1 });
  });
  afterAll(() => verifier.close());

  it("scores the golden examples within 1e-4, reading each step's score at its last token", async () => {
    const golden = JSON.parse(readFileSync(join(resolveModel("prm"), "golden.json"), "utf8")) as {
      examples: { problem: string; solution: string; step_scores: number[] }[];
    };
    const requests = golden.examples.map((example) => ({ problem: example.problem, steps: example.solution.split("\n\n") }));
    const answers = await verifier.scoreSteps(requests);
    const scores = answers.map((answer) => answer.scores);
    golden.examples.forEach((example, i) => {
      expect(scores[i]).toHaveLength(example.step_scores.length);
      example.step_scores.forEach((score, k) => expect(Math.abs((scores[i]?.[k] ?? NaN) - score)).toBeLessThan(1e-4));
    });
    for (const answer of answers) expect(answer.tokens).toBeGreaterThan(0);
  });
});

describe("model fingerprints", () => {
  it("hash the model's files: the same in a copy, other after a change, and reported by the loaded model", async () => {
    const original = await fingerprintModel(readModelDirectory(resolveModel("prm")));
    expect(original).toMatch(/^sha256:[0-9a-f]{64}$/);
    const dir = mkdtempSync(join(tmpdir(), "deliberate-fingerprint-"));
    cpSync(resolveModel("prm"), dir, { recursive: true });
    expect(await fingerprintModel(readModelDirectory(dir))).toBe(original);
    writeFileSync(join(dir, "config.json"), `${readFileSync(join(dir, "config.json"), "utf8")}\n`);
    expect(await fingerprintModel(readModelDirectory(dir))).not.toBe(original);
    const verifier = await loadVerifier("prm", { threads: 1 });
    try {
      expect(verifier.fingerprint).toBe(original);
    } finally {
      await verifier.close();
    }
  });
});

describe("loading errors name what is wrong", () => {
  const copy = () => {
    const dir = mkdtempSync(join(tmpdir(), "deliberate-model-"));
    cpSync(resolveModel("policy"), dir, { recursive: true });
    return dir;
  };

  it("a directory that is not a model", async () => {
    await expect(loadPolicy(tmpdir() + "/no-such-model")).rejects.toThrow(/model directory not found/);
    await expect(loadPolicy(mkdtempSync(join(tmpdir(), "deliberate-empty-")))).rejects.toThrow(/config.json is missing/);
  });

  it("a missing graph file", async () => {
    const dir = copy();
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    config.graphs.decode.file = "missing.onnx";
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    await expect(loadPolicy(dir)).rejects.toThrow(/missing\.onnx is missing/);
  });

  it("I/O names that do not match the config", async () => {
    const dir = copy();
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    config.graphs.decode.inputs[0].name = "tokens";
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    await expect(loadPolicy(dir, { threads: 1 })).rejects.toThrow(/missing inputs tokens/);
  });

  it("a tokenizer that does not fit the vocabulary", async () => {
    const dir = copy();
    const tokenizer = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    tokenizer.model.vocab["\u00e9"] = 5000;
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
    await expect(loadPolicy(dir, { threads: 1 })).rejects.toThrow(/token id 5000, beyond the model's vocabulary/);
  });

  it("a device that cannot start says why", async () => {
    await expect(loadPolicy("policy", { device: "cuda", threads: 1 })).rejects.toThrow(/device cuda cannot start.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });
});

describe("a Hugging Face decoder export (optimum I/O names, tiny random model)", () => {
  const dir = join(resolveModel("policy"), "..", "..", "test", "fixtures", "tiny-hf");
  const golden = JSON.parse(readFileSync(join(dir, "golden.json"), "utf8")) as DecoderGolden;

  const openEngine = async () => {
    const model = readModelDirectory(dir);
    if (model.kind !== "hf-decoder") throw new Error(`read as ${model.kind}`);
    const graphs = await HuggingFaceGraphs.open(model.graph, model.config, { device: "cpu", threads: 1 });
    // No step delimiter can stop these steps early: each extend decodes exactly maxStepTokens.
    return new DecoderEngine(graphs, new Tokenizer(model.tokenizer as object, model.tokenizerConfig), {
      stepDelimiter: "\u0000never",
      eosTokenIds: [],
      maxSequenceTokens: 512,
      maxStateBytes: 2 ** 30,
    });
  };

  it("decodes with its KV cache to the tokens of a full recomputation, alone and left-padded in a batch", async () => {
    const engine = await openEngine();
    const steps = golden.greedy_ids.length;
    await engine.start(0, golden.prompt_ids);
    const [alone] = await engine.extend([{ branch: 0, seed: 0, temperature: 0, maxStepTokens: steps }]);
    expect(alone?.tokenIds).toEqual(golden.greedy_ids);
    // Longer and shorter neighbours make the golden prompt's cache padded on the left.
    await engine.start(1, golden.prompt_ids);
    await engine.start(2, [...golden.prompt_ids, 40, 41, 42, 43, 44, 45, 46]);
    await engine.start(3, [1, 40]);
    const batched = await engine.extend([1, 2, 3].map((branch) => ({ branch, seed: 0, temperature: 0, maxStepTokens: steps })));
    expect(batched[0]?.tokenIds).toEqual(golden.greedy_ids);
    await engine.close();
  });

  it("loads as a policy and renders its chat template", async () => {
    const policy = await loadPolicy(dir, { threads: 1 });
    try {
      const branch = await policy.start({ problem: "Compute 3 + 4." });
      // "[user] " + instruction + problem + "\n[assistant] " after <bos>: far longer than the problem alone.
      expect(branch.promptTokens).toBeGreaterThan(120);
      await policy.extend([branch], { temperature: 0, seeds: [0], maxStepTokens: 8 });
      expect(branch.generatedTokens).toBeGreaterThan(0);
    } finally {
      await policy.close();
    }
  });
});
