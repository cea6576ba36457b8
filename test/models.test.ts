// The embedded ONNX models: graph I/O matches config.json, the tokenizer round-trips, and greedy
// decoding through the prefill + decode graphs (or PRM scoring) reproduces golden.json.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { loadVerifier } from "../src/runtime/load.js";

const modelDir = (name: string) => fileURLToPath(new URL(`../models/${name}/`, import.meta.url));
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, "utf8"));

const Dim = z.union([z.number().int(), z.string()]);
const Io = z.object({ name: z.string(), shape: z.array(Dim), dtype: z.enum(["int64", "float32"]) });
const Graph = z.object({ file: z.string(), inputs: z.array(Io), outputs: z.array(Io) });
const Config = z.object({
  parameters: z.number().int(),
  tokenizer: z.object({ special_ids: z.object({ pad: z.number(), bos: z.number(), eos: z.number() }) }),
  step_delimiter: z.literal("\n\n"),
  graphs: z.record(z.string(), Graph),
  state: z.array(z.object({ past: z.string(), present: z.string(), shape: z.array(Dim) })).optional(),
});
const LmGolden = z.object({ prompt_ids: z.array(z.number().int()), greedy_ids: z.array(z.number().int()) });
const PrmGolden = z.object({
  examples: z.array(z.object({
    problem: z.string(),
    solution: z.string(),
    input_ids: z.array(z.number().int()),
    scores: z.array(z.number()),
    step_scores: z.array(z.number()),
  })),
});

function loadConfig(name: string) {
  return Config.parse(readJson(`${modelDir(name)}config.json`));
}

/** The graph's inputs and outputs agree with config.json: names, order, element types and shapes. */
function checkIo(session: ort.InferenceSession, graph: z.infer<typeof Graph>) {
  expect(session.inputNames).toEqual(graph.inputs.map((io) => io.name));
  expect(session.outputNames).toEqual(graph.outputs.map((io) => io.name));
  const meta = [...session.inputMetadata, ...session.outputMetadata];
  for (const [io, m] of [...graph.inputs, ...graph.outputs].map((io, i) => [io, meta[i]] as const)) {
    if (!m?.isTensor) throw new Error(`${io.name} is not a tensor`);
    expect(m.type, io.name).toBe(io.dtype);
    expect(m.shape, io.name).toEqual(io.shape);
  }
}

const ids = (values: readonly number[], dims: readonly number[]) =>
  new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), dims);

function argmaxLast(logits: ort.Tensor): number {
  const data = logits.data as Float32Array;
  const vocab = logits.dims[logits.dims.length - 1] ?? 0;
  const row = data.subarray(data.length - vocab);
  let best = 0;
  for (let i = 1; i < vocab; i++) if ((row[i] ?? -Infinity) > (row[best] ?? -Infinity)) best = i;
  return best;
}

describe.each(["policy", "baseline", "recursive"])("%s ONNX model", (name) => {
  const config = loadConfig(name);
  const graph = (key: string) => {
    const g = config.graphs[key];
    if (!g) throw new Error(`${name}/config.json has no ${key} graph`);
    return g;
  };

  it("has graphs whose inputs and outputs match config.json", async () => {
    for (const key of ["prefill", "decode"]) {
      const session = await ort.InferenceSession.create(modelDir(name) + graph(key).file);
      checkIo(session, graph(key));
    }
    const state = config.state ?? [];
    expect(graph("decode").inputs.slice(2).map((io) => io.name)).toEqual(state.map((s) => s.past));
    expect(graph("decode").outputs.slice(1).map((io) => io.name)).toEqual(state.map((s) => s.present));
    if (name === "recursive") {
      // The one-loop graph: its state is one loop's, named without the loop.
      const session = await ort.InferenceSession.create(modelDir(name) + graph("loop").file);
      checkIo(session, graph("loop"));
      expect(graph("loop").inputs.slice(0, 4).map((io) => io.name)).toEqual(["input_ids", "hidden", "loop", "position_ids"]);
      expect(graph("loop").outputs.slice(0, 2).map((io) => io.name)).toEqual(["hidden_out", "logits"]);
      const perLoop = graph("loop").inputs.length - 4;
      expect(state).toHaveLength(2 * perLoop);
      expect(state.slice(perLoop).map((s) => s.past.replace(".1.", "."))).toEqual(graph("loop").inputs.slice(4).map((io) => io.name));
    }
  });

  it("decodes the golden prompt greedily with prefill + decode steps", async () => {
    const golden = LmGolden.parse(readJson(`${modelDir(name)}golden.json`));
    const prefill = await ort.InferenceSession.create(modelDir(name) + graph("prefill").file);
    const decode = await ort.InferenceSession.create(modelDir(name) + graph("decode").file);
    const n = golden.prompt_ids.length;
    let out = await prefill.run({
      input_ids: ids(golden.prompt_ids, [1, n]),
      position_ids: ids([...Array(n).keys()], [1, n]),
    });
    const generated: number[] = [];
    for (let t = 0; t < golden.greedy_ids.length; t++) {
      const logits = out.logits;
      if (!logits) throw new Error("no logits");
      const next = argmaxLast(logits);
      generated.push(next);
      const feeds: Record<string, ort.Tensor> = {
        input_ids: ids([next], [1, 1]),
        position_ids: ids([n + t], [1, 1]),
      };
      for (const s of config.state ?? []) {
        const present = out[s.present];
        if (!present) throw new Error(`no ${s.present}`);
        feeds[s.past] = present;
      }
      out = await decode.run(feeds);
    }
    expect(generated).toEqual(golden.greedy_ids);
  });

  it("ships a character tokenizer that round-trips and agrees with the golden prompt", () => {
    const tokenizer = new Tokenizer(readJson(`${modelDir(name)}tokenizer.json`) as object, {});
    const text = "Compute (17 + 5) * 3 - 8.\n\n";
    const encoded = tokenizer.encode(text, { add_special_tokens: false });
    expect(encoded.ids).toHaveLength(text.length);
    expect(tokenizer.decode(encoded.ids)).toBe(text);
    const golden = LmGolden.parse(readJson(`${modelDir(name)}golden.json`));
    expect([config.tokenizer.special_ids.bos, ...tokenizer.encode("Compute (17 + 5) * 3 - 8.\n\n", {
      add_special_tokens: false,
    }).ids]).toEqual(golden.prompt_ids);
  });
});

// models/prm reads steps as written; models/prm-columns in its own columnar rendering (config.json
// `rendering`), so its golden input_ids are the rendered text and the engine must render the same.
describe.each(["prm", "prm-columns"])("PRM ONNX model %s", (name) => {
  const config = loadConfig(name);
  const golden = PrmGolden.parse(readJson(`${modelDir(name)}golden.json`));

  it("has a scores graph matching config.json and reproduces the golden scores", async () => {
    const graph = config.graphs.scores;
    if (!graph) throw new Error(`${name}/config.json has no scores graph`);
    const session = await ort.InferenceSession.create(modelDir(name) + graph.file);
    checkIo(session, graph);
    const T = Math.max(...golden.examples.map((e) => e.input_ids.length));
    const B = golden.examples.length;
    const input: number[] = [];
    const mask: number[] = [];
    for (const e of golden.examples) {
      for (let t = 0; t < T; t++) {
        input.push(e.input_ids[t] ?? config.tokenizer.special_ids.pad);
        mask.push(t < e.input_ids.length ? 1 : 0);
      }
    }
    const out = await session.run({ input_ids: ids(input, [B, T]), attention_mask: ids(mask, [B, T]) });
    const scores = out.scores?.data as Float32Array;
    golden.examples.forEach((e, b) => {
      e.scores.forEach((want, t) => expect(Math.abs((scores[b * T + t] ?? NaN) - want)).toBeLessThan(1e-4));
    });
  });

  it("scores the golden solutions' steps through the verifier as training did (rendering included)", async () => {
    const verifier = await loadVerifier(modelDir(name), { threads: 1 });
    try {
      const scored = await verifier.scoreSteps(
        golden.examples.map((e) => ({ problem: e.problem, steps: e.solution.split("\n\n") })),
      );
      golden.examples.forEach((e, b) => {
        expect(scored[b]?.scores).toHaveLength(e.step_scores.length);
        e.step_scores.forEach((want, k) => expect(Math.abs((scored[b]?.scores[k] ?? NaN) - want)).toBeLessThan(1e-4));
      });
    } finally {
      await verifier.close();
    }
  });
});
