// Decode speed of an exported LM through onnxruntime-node: prefill a short prompt, then feed the
// decode graph its own state for `steps` tokens. Usage: node bench_decode.mjs MODEL_DIR [steps]
// Prints {"batch_1": ms per step, "batch_16": ...} as JSON.
import * as ort from "onnxruntime-node";
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const steps = Number(process.argv[3] ?? 512);
const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
const options = { intraOpNumThreads: 1 };
const prefill = await ort.InferenceSession.create(path.join(dir, config.graphs.prefill.file), options);
const decode = await ort.InferenceSession.create(path.join(dir, config.graphs.decode.file), options);
const int64 = (values, dims) => new ort.Tensor("int64", BigInt64Array.from(values.map(BigInt)), dims);

const result = {};
for (const batch of [1, 16]) {
  const prompt = 30;
  let out = await prefill.run({
    input_ids: int64(Array(batch * prompt).fill(5), [batch, prompt]),
    position_ids: int64(Array.from({ length: batch * prompt }, (_, i) => i % prompt), [batch, prompt]),
  });
  const start = performance.now();
  for (let t = 0; t < steps; t++) {
    const feeds = { input_ids: int64(Array(batch).fill(5), [batch, 1]), position_ids: int64(Array(batch).fill(prompt + t), [batch, 1]) };
    for (const s of config.state) feeds[s.past] = out[s.present];
    out = await decode.run(feeds);
  }
  result[`batch_${batch}`] = (performance.now() - start) / steps;
}
process.stdout.write(JSON.stringify(result));
