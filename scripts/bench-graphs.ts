/**
 * Graph benchmark (not a timed test): the time of one run of each ONNX graph of an embedded model
 * directory on its own, for one decoding step (`sequence` = 1, a past of `--length` tokens) at batch
 * 1, 8, 32 and 64, with synthetic inputs: what the decoding engine's runs cost before any of its own
 * work (batching state, sampling, messages). Read beside `npm run bench:runtime`, it says how much of
 * a decode step is the model and how much the engine, and what a graph run costs at each batch.
 *
 *   npm run bench:graphs -- --model recursive [--threads 1] [--length 64] [--runs 60]
 *
 * Inputs: float tensors are filled with 0.01, position ids with `--length`, attention masks with 1,
 * other integer inputs (token ids, a row's loop) with 0. Prints the median of `--runs` runs after 10
 * warm-up runs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { packageRoot } from "../src/runtime/load.js";

const { values: flags } = parseArgs({
  options: {
    model: { type: "string", default: "recursive" },
    threads: { type: "string", default: "1" },
    length: { type: "string", default: "64" },
    runs: { type: "string", default: "60" },
  },
});
const BATCHES = [1, 8, 32, 64];
const WARMUP = 10;
const length = Number(flags.length);
const runs = Number(flags.runs);
const dir = (flags.model as string).includes("/") ? (flags.model as string) : join(packageRoot(), "models", flags.model as string);

interface Io {
  name: string;
  shape: (string | number)[];
  dtype: string;
}
const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as { graphs: Record<string, { file?: string; inputs: Io[] }> };
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** A dimension for one decoding step at batch `batch` after `length` tokens. */
function dimension(dim: string | number, batch: number): number {
  if (typeof dim === "number") return dim;
  if (dim === "batch") return batch;
  if (dim === "sequence") return 1;
  if (dim === "past_sequence") return length;
  if (dim === "past_sequence + sequence") return length + 1;
  throw new Error(`${dir}/config.json: no synthetic size for the dimension "${dim}"`);
}

function feed(io: Io, batch: number): ort.Tensor {
  const shape = io.shape.map((dim) => dimension(dim, batch));
  const size = shape.reduce((a, b) => a * b, 1);
  if (io.dtype === "float32") return new ort.Tensor("float32", new Float32Array(size).fill(0.01), shape);
  const value = io.name.includes("position") ? BigInt(length) : io.name.includes("mask") ? 1n : 0n;
  return new ort.Tensor("int64", new BigInt64Array(size).fill(value), shape);
}

const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all", executionMode: "sequential", intraOpNumThreads: Number(flags.threads), interOpNumThreads: 1 };
console.log(`${dir}: one run per graph, median of ${runs} (${flags.threads} thread(s), past of ${length} tokens), ms`);
console.log(["graph".padEnd(14), ...BATCHES.map((batch) => `batch ${batch}`.padStart(10))].join(""));
for (const [name, graph] of Object.entries(config.graphs)) {
  const session = await ort.InferenceSession.create(join(dir, graph.file ?? `${name}.onnx`), options);
  const cells: string[] = [];
  for (const batch of BATCHES) {
    const feeds = Object.fromEntries(graph.inputs.map((io) => [io.name, feed(io, batch)]));
    const times: number[] = [];
    for (let i = 0; i < WARMUP + runs; i++) {
      const started = performance.now();
      await session.run(feeds);
      if (i >= WARMUP) times.push(performance.now() - started);
    }
    cells.push(median(times).toFixed(3).padStart(10));
  }
  console.log([name.padEnd(14), ...cells].join(""));
  await session.release();
}
