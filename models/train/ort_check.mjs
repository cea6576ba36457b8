// Runs ONNX check cases through onnxruntime-node and prints, per case and output, the max abs
// difference from the PyTorch values. Usage: node ort_check.mjs cases.json
import * as ort from "onnxruntime-node";
import fs from "node:fs";

const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const sessions = new Map();
const result = {};
for (const c of cases) {
  if (!sessions.has(c.file)) sessions.set(c.file, await ort.InferenceSession.create(c.file));
  const session = sessions.get(c.file);
  const feeds = {};
  for (const [name, t] of Object.entries(c.inputs)) {
    const data = t.type === "int64" ? BigInt64Array.from(t.data.map((v) => BigInt(v))) : Float32Array.from(t.data);
    feeds[name] = new ort.Tensor(t.type, data, t.dims);
  }
  const out = await session.run(feeds);
  const diffs = {};
  for (const [name, expected] of Object.entries(c.expected)) {
    const got = out[name].data;
    if (got.length !== expected.length) throw new Error(`${c.name}: ${name} has ${got.length} values, expected ${expected.length}`);
    let max = 0;
    for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i] - expected[i]));
    diffs[name] = max;
  }
  result[c.name] = diffs;
}
process.stdout.write(JSON.stringify(result));
