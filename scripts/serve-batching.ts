/**
 * `deliberate serve` batching and prefix cache (a script that prints figures, not a timed test):
 * 32 problems, 4 search steps, each step sent as 32 concurrent /v1/completions requests (prompt and
 * earlier steps as token ids, as the HTTP policy sends them). Prints per step the decode batches the
 * requests went into, the largest batch, prefix-cache hits and wall time, beside the same steps
 * decoded in process (one `decode` call per step, the best case of batching). Solutions that end
 * (end of text, or a step cut at max_tokens) are not continued.
 *
 *   npx tsx scripts/serve-batching.ts [--problems 32] [--steps 4]
 */
import { parseArgs } from "node:util";
import type { Branch } from "../src/policy.js";
import { loadPolicy } from "../src/runtime/load.js";
import { startServer } from "../src/serve/server.js";

const { values: flags } = parseArgs({ options: { problems: { type: "string", default: "32" }, steps: { type: "string", default: "4" } } });
const problems = Array.from({ length: Number(flags.problems) }, (_, i) => `Compute (${i + 11} + ${3 * i + 7}) * ${(i % 7) + 2}.`);
const STEP = { temperature: 1, max_tokens: 48, stop: ["\n\n"], include_stop_str_in_output: true, return_token_ids: true };

const policy = await loadPolicy("policy");
const server = await startServer({ policy, verifier: null, policyName: "policy", verifierName: "none", host: "127.0.0.1", port: 0, prefixCache: { maxEntries: 4096, maxBytes: 2 ** 29 } });
const stats = async () => {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Object.fromEntries(text.split("\n").filter((line) => line && !line.startsWith("#")).map((line) => [line.split(" ")[0], Number(line.split(" ")[1])]));
};

let prompts = await Promise.all(problems.map((problem) => policy.renderPrompt({ problem })));
let local: Branch[] = await Promise.all(prompts.map((tokens) => policy.startFromTokens(tokens)));
console.log("step | requests | batches | largest batch | cache hits | HTTP ms | in-process ms");
for (let step = 0; step < Number(flags.steps); step++) {
  const seeds = prompts.map((_, i) => 1000 * step + i);
  const before = await stats();
  const started = performance.now();
  const responses = await Promise.all(
    prompts.map((prompt, i) =>
      fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "policy", prompt, seed: seeds[i], ...STEP }) }).then(
        (response) => response.json() as Promise<{ choices: { token_ids: number[]; finish_reason: string; stop_reason: string | null }[] }>,
      ),
    ),
  );
  const httpMs = performance.now() - started;
  const after = await stats();
  const localStarted = performance.now();
  await policy.decode(local, { temperature: 1, seeds, maxStepTokens: 48, stop: ["\n\n"] });
  const localMs = performance.now() - localStarted;
  const delta = (name: string) => (after[name] as number) - (before[name] as number);
  console.log(
    `${step + 1} | ${prompts.length} | ${delta("deliberate_decode_batches_total")} | ${after.deliberate_decode_largest_batch} | ` +
      `${delta("deliberate_prefix_cache_hits_total")} | ${httpMs.toFixed(0)} | ${localMs.toFixed(0)}`,
  );
  // Continue the solutions that ended a step (as a search would); drop those that ended.
  const continuing = responses.map((response) => response.choices[0]?.finish_reason === "stop" && response.choices[0]?.stop_reason === "\n\n");
  prompts = prompts.flatMap((prompt, i) => (continuing[i] ? [[...prompt, ...(responses[i]?.choices[0]?.token_ids ?? [])]] : []));
  local.forEach((branch, i) => {
    if (!continuing[i]) branch.release();
  });
  local = local.filter((_, i) => continuing[i]);
  if (prompts.length === 0) break;
}
for (const branch of local) branch.release();
await server.close();
await policy.close();
