// The Mixture-of-Depths model (models/mod, exported by models/train/export_mod.py): segment graphs
// match config.json, greedy decoding reproduces PyTorch's golden tokens and routing counts, rows
// that route differently in one batch decode as they would alone, and FLOPs count only the routed work.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComputeMeter } from "../src/meter.js";
import { DecoderEngine, type ExtendRequest } from "../src/runtime/decoder-engine.js";
import type { DecoderGraphs, StepOutput } from "../src/runtime/graphs.js";
import { loadPolicy, resolveModel } from "../src/runtime/load.js";
import { readModelDirectory, type EmbeddedModConfig } from "../src/runtime/model-config.js";
import { ModGraphs } from "../src/runtime/mod-graphs.js";
import type { OnnxPolicy } from "../src/runtime/onnx-policy.js";

interface ModGolden {
  prompt_ids: number[];
  greedy_ids: number[];
  routed_tokens: Record<string, { prompt: number; generated: number }>;
}

const model = readModelDirectory(resolveModel("mod"));
if (model.kind !== "embedded-mod") throw new Error("models/mod is not a Mixture-of-Depths export");
const config: EmbeddedModConfig = model.config;
const golden = JSON.parse(readFileSync(join(model.dir, "golden.json"), "utf8")) as ModGolden;
const routedBlocks = config.architecture.routed_blocks;

/** Records every step's routing decisions on the way through. */
class Recording implements DecoderGraphs {
  readonly steps: StepOutput["routed"][] = [];
  constructor(readonly inner: ModGraphs) {}
  get layouts() {
    return this.inner.layouts;
  }
  get device() {
    return this.inner.device;
  }
  get routedBlocks() {
    return this.inner.routedBlocks;
  }
  prefill(tokens: readonly number[]) {
    return this.inner.prefill(tokens);
  }
  async step(tokens: readonly number[], states: readonly Float32Array[][], lengths: readonly number[]) {
    const output = await this.inner.step(tokens, states, lengths);
    this.steps.push(output.routed);
    return output;
  }
  release() {
    return this.inner.release();
  }
}

async function engine() {
  const graphs = new Recording(await ModGraphs.open(model.dir, config, { device: "cpu", threads: 1 }));
  const decoder = new DecoderEngine(graphs, new Tokenizer(model.tokenizer as object, {}), {
    stepDelimiter: config.step_delimiter,
    eosTokenIds: [config.eos_token_id],
    maxSequenceTokens: 4096,
    maxStateBytes: 2 ** 30,
  });
  return { graphs, decoder };
}

describe("the Mixture-of-Depths ONNX model", () => {
  it("has segment graphs whose inputs and outputs match config.json", async () => {
    for (const segment of config.segments) {
      const graph = config.graphs[segment.graph];
      if (!graph) throw new Error(`no graph ${segment.graph}`);
      const session = await ort.InferenceSession.create(join(model.dir, graph.file));
      expect(session.inputNames).toEqual(graph.inputs.map((io) => io.name));
      expect(session.outputNames).toEqual(graph.outputs.map((io) => io.name));
      await session.release();
    }
    expect(config.segments.filter((segment) => segment.kind === "routed").flatMap((segment) => segment.blocks)).toEqual(routedBlocks);
  });

  it("decodes the golden prompt greedily to PyTorch's tokens, with PyTorch's routing counts", async () => {
    const { graphs, decoder } = await engine();
    const prompt = await graphs.prefill(golden.prompt_ids);
    expect(prompt.routed).toEqual(routedBlocks.map((block) => golden.routed_tokens[String(block)]?.prompt));
    await decoder.start(0, golden.prompt_ids);
    const generated: number[] = [];
    const routed = routedBlocks.map(() => 0);
    while (generated.length < golden.greedy_ids.length) {
      const [step] = await decoder.extend([{ branch: 0, seed: 0, temperature: 0, maxStepTokens: golden.greedy_ids.length - generated.length }]);
      if (!step) throw new Error("no step");
      generated.push(...step.tokenIds);
      step.routedTokens?.forEach((count, k) => (routed[k] = (routed[k] as number) + count));
      if (step.stopReason === "eos" || step.stopReason === "max-length") break;
    }
    expect(generated).toEqual(golden.greedy_ids);
    expect(routed).toEqual(routedBlocks.map((block) => golden.routed_tokens[String(block)]?.generated));
    await decoder.close();
  });

  it("reaches the same tokens when the prompt's last tokens are appended one decode step at a time", async () => {
    const { decoder } = await engine();
    await decoder.start(0, golden.prompt_ids.slice(0, -6));
    await decoder.append(0, golden.prompt_ids.slice(-6));
    const [step] = await decoder.extend([{ branch: 0, seed: 0, temperature: 0, maxStepTokens: 12, stop: [] }]);
    expect(step?.tokenIds).toEqual(golden.greedy_ids.slice(0, 12));
    await decoder.close();
  });

  it("gives every branch of a batch whose rows route differently the tokens it gets decoded alone", async () => {
    const problems = ["Compute 17 + 5.", "Compute (17 + 5) * 3 - 8.", "Solve for x: 3x + 7 = 22.", "Compute 96 - 41."];
    const tokenizer = new Tokenizer(model.tokenizer as object, {});
    const prompts = problems.map((problem) => [config.bos_token_id, ...tokenizer.encode(`${problem}\n\n`, { add_special_tokens: false }).ids]);
    const request = (branch: number): ExtendRequest => ({ branch, seed: 100 + (branch % 8), temperature: 1, maxStepTokens: 24, stop: [] });

    const batched = await engine();
    // Two branches per prompt: a fork shares its parent's state, and samples with its own seed.
    for (const [i, prompt] of prompts.entries()) {
      await batched.decoder.start(i, prompt);
      batched.decoder.fork(i, i + 4);
    }
    const together = await batched.decoder.extend([0, 1, 2, 3, 4, 5, 6, 7].map(request));
    const alone = [];
    for (const branch of [0, 1, 2, 3, 4, 5, 6, 7]) {
      const single = await engine();
      await single.decoder.start(branch, prompts[branch % 4] as number[]);
      alone.push(...(await single.decoder.extend([request(branch)])));
      await single.decoder.close();
    }
    expect(together.map((result) => result.tokenIds)).toEqual(alone.map((result) => result.tokenIds));
    expect(together.map((result) => result.routedTokens)).toEqual(alone.map((result) => result.routedTokens));
    // Some batched step sent some rows through a routed block and others around it.
    const mixed = batched.graphs.steps.filter((rows) => rows && routedBlocks.some((_, k) => new Set(rows.map((row) => row[k])).size > 1));
    expect(mixed.length).toBeGreaterThan(5);
    await batched.decoder.close();
  });
});

describe("the Mixture-of-Depths policy's compute", () => {
  let policy: OnnxPolicy;
  beforeAll(async () => {
    policy = await loadPolicy("mod", { threads: 1 });
  });
  afterAll(() => policy.close());

  it("counts FLOPs of the routed work only: fewer routed tokens, fewer FLOPs", async () => {
    const root = await policy.start({ problem: "Compute (160 - 89) * 10 + 60." });
    expect(root.promptTokens).toBeGreaterThan(0);
    const branches = Array.from({ length: 12 }, () => root.fork());
    const steps = [];
    // A few steps each, at a high temperature: the untrained model writes mostly newlines (which no router sends through) and so ends steps early.
    for (let round = 0; round < 6; round++) {
      const live = branches.filter((branch) => !branch.finished);
      if (live.length === 0) break;
      steps.push(...(await policy.extend(live, { temperature: 3, seeds: live.map((_, i) => round * 100 + i), maxStepTokens: 32 })));
    }
    const perBlock = routedBlocks.map((block) => config.flops.per_routed_block[String(block)] as number);
    const shares: { routedPerToken: number; flopsPerToken: number }[] = [];
    for (const step of steps) {
      const routing = step.routing ?? {};
      const routed = routedBlocks.map((block) => routing[String(block)]?.routed ?? 0);
      const expected = step.calls * config.flops.per_token + routed.reduce((sum, count, k) => sum + count * (perBlock[k] as number), 0);
      expect(step.flops).toBe(expected);
      // Never more than the whole model on every fed token.
      expect(step.flops ?? Infinity).toBeLessThanOrEqual(2 * config.parameters * step.calls + 1e-6);
      if (step.calls > 0) shares.push({ routedPerToken: routed.reduce((a, b) => a + b, 0) / step.calls, flopsPerToken: (step.flops as number) / step.calls });
    }
    shares.sort((a, b) => a.routedPerToken - b.routedPerToken);
    const first = shares[0];
    const last = shares[shares.length - 1];
    if (!first || !last) throw new Error("no steps");
    expect(first.routedPerToken).toBeLessThan(last.routedPerToken);
    expect(first.flopsPerToken).toBeLessThan(last.flopsPerToken);
    for (let i = 1; i < shares.length; i++) expect((shares[i] as { flopsPerToken: number }).flopsPerToken).toBeGreaterThanOrEqual((shares[i - 1] as { flopsPerToken: number }).flopsPerToken);

    // The meter takes the model's own count, and reports the share routed per block.
    const meter = new ComputeMeter();
    meter.countPrefill(root.promptTokens, policy.parameters, { ...(root.startFlops !== undefined ? { flops: root.startFlops } : {}), ...(root.startRouting ? { routing: root.startRouting } : {}) });
    for (const step of steps) meter.countGenerated(step.tokens, policy.parameters, { ...(step.flops !== undefined ? { flops: step.flops } : {}), ...(step.routing ? { routing: step.routing } : {}) });
    const report = meter.report();
    const tokens = root.promptTokens + steps.reduce((sum, step) => sum + step.calls, 0);
    expect(report.flops).toBeLessThan(2 * config.parameters * tokens);
    for (const block of routedBlocks) {
      const entry = report.routing?.[String(block)];
      expect(entry?.tokens).toBe(tokens);
      expect(entry?.share).toBeGreaterThan(0);
      expect(entry?.share).toBeLessThan(1);
    }
    for (const branch of branches) branch.release();
    root.release();
  });
});
