/**
 * `deliberate serve`: the models deliberate loads, behind the subset of vLLM's API its HTTP client
 * uses, and the search strategies as OpenAI-compatible chat models.
 */
import { basename, resolve } from "node:path";
import { constants } from "node:os";
import { Command, Option } from "commander";
import { STRATEGIES } from "../../strategies/registry.js";
import { InputError } from "../errors.js";
import { EMBEDDED_MODELS } from "../runtime/load.js";
import { OnnxPolicy } from "../runtime/onnx-policy.js";
import { ServedStepVerifier } from "../served/verifier.js";
import { createServer } from "../serve/server.js";
import { loadFileParams } from "../strategy.js";
import { addModelOptions, loadModels, parseSimulatedVerifier, positiveInteger, type ModelFlags } from "./model-options.js";
import { fileParamFlags, fileParamsFromFlags } from "./strategy-flags.js";

interface ServeFlags extends ModelFlags {
  host: string;
  port: number;
  servedModelName?: string;
  servedVerifierName?: string;
  maxModelLen?: number;
  prefixCacheEntries: number;
  prefixCacheMib: number;
  apiKey?: string;
  maxBodyKib: number;
  maxBudget: number;
  maxConcurrent: number;
  maxQueue: number;
  requestTimeout: number;
  gracePeriod: number;
}

function nonNegativeInteger(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 0) throw new InputError(`${flag} must be a non-negative integer, got "${value}"`);
    return parsed;
  };
}

/** `deliberate-policy` for an embedded model (`deliberate-rule@0.8` for a simulated verifier), the directory's name for a path. */
function defaultName(source: string): string {
  return source in EMBEDDED_MODELS || source === "rule" || parseSimulatedVerifier(source) !== null ? `deliberate-${source}` : basename(resolve(source));
}

async function serve(flags: ServeFlags): Promise<void> {
  if (flags.port > 65535) throw new InputError(`--port must be at most 65535, got ${flags.port}`);
  // The strategies' files (compute-optimal's allocation table), read before the models load so that a bad one fails at once.
  const strategyDefaults = Object.fromEntries(
    STRATEGIES.filter((strategy) => strategy.fileParams !== undefined).map((strategy) => [
      strategy.name,
      loadFileParams(strategy, fileParamsFromFlags(strategy, flags as unknown as Record<string, unknown>)),
    ]),
  );
  const models = await loadModels(flags, flags.maxModelLen ? { maxSequenceTokens: flags.maxModelLen } : {});
  const { policy, verifier } = models;
  const policyName = flags.servedModelName ?? defaultName(flags.policy);
  const verifierName = flags.servedVerifierName ?? defaultName(flags.verifier);
  let server;
  try {
    server = await createServer({
      policy,
      verifier,
      policyName,
      verifierName,
      host: flags.host,
      port: flags.port,
      prefixCache: { maxEntries: flags.prefixCacheEntries, maxBytes: flags.prefixCacheMib * 2 ** 20 },
      service: {
        apiKey: flags.apiKey,
        maxBodyBytes: flags.maxBodyKib * 2 ** 10,
        maxBudget: flags.maxBudget,
        maxConcurrent: flags.maxConcurrent,
        maxQueue: flags.maxQueue,
        requestTimeoutMs: flags.requestTimeout * 1000,
        graceMs: flags.gracePeriod * 1000,
      },
      strategyDefaults,
    });
  } catch (error) {
    await models.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      throw new InputError(`cannot listen on --host ${flags.host} --port ${flags.port}: ${(error as Error).message}`);
    }
    throw error;
  }
  // One line on stdout that says where it listens, for scripts and tests that start it.
  process.stdout.write(`deliberate serve listening on ${server.url}\n`);
  // Models served elsewhere are searched with, not hosted again.
  const hosted = policy instanceof OnnxPolicy ? policy : null;
  process.stderr.write(
    (hosted ? `policy ${policyName} (${hosted.device}, max_model_len ${hosted.maxSequenceTokens})` : `policy ${policy.name} (served, searched with, not hosted)`) +
      (verifier ? `, verifier ${verifier instanceof ServedStepVerifier ? `${verifier.name} (served)` : verifierName}` : ", no verifier") +
      `; OpenAI base URL ${server.url}/v1` +
      (flags.apiKey ? " (API key required)" : "") +
      `; Ctrl-C stops\n`,
  );

  const signal = await new Promise<NodeJS.Signals>((done) => {
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
  const quit = (again: NodeJS.Signals) => process.exit(128 + constants.signals[again]);
  process.once("SIGINT", quit);
  process.once("SIGTERM", quit);
  process.stderr.write(
    `${signal}: finishing the requests in flight (at most ${flags.gracePeriod} s, then their searches are stopped), then stopping (${signal} again quits at once)\n`,
  );
  const { hits, misses, reusedTokens } = server.cache.stats();
  const { batches, branchSteps } = hosted?.decodeBatches() ?? { batches: 0, branchSteps: 0 };
  process.stderr.write(
    `prefix cache: ${hits} hits, ${misses} misses, ${reusedTokens} prompt tokens not prefilled; ${branchSteps} branch steps decoded in ${batches} batches\n`,
  );
  await server.close();
  await models.close();
  process.exitCode = 0;
}

export function registerServe(program: Command): void {
  const command = program
    .command("serve")
    .description(
      "Serve the policy and the PRM over HTTP with vLLM's OpenAI-compatible API (the subset deliberate's HTTP client uses), " +
        "and the search strategies as OpenAI-compatible chat models (model <strategy>-<budget>: beam-16, best-of-n-8, " +
        "compute-optimal-16, majority-8; POST /v1/chat/completions, streamed or not, and /v1/completions), searching with the " +
        "hosted models or with models served elsewhere (--policy and --verifier URLs, which are then not hosted again). " +
        "GET /health, GET /v1/models, POST /v1/completions (prompt as text or token ids, n, seed, stop, max_tokens, temperature, top_p, " +
        "logprobs, return_token_ids), POST /tokenize (prompt or chat messages), POST /pooling (the PRM's per-step scores in " +
        "Qwen2.5-Math-PRM's token_classify shape), GET /metrics (prefix-cache hits, decode batches). Concurrent requests share " +
        "decode batches; a prefix cache keeps the decoding state of recent prompts, so a search step resumes where the last one ended. " +
        "Prints one line, 'deliberate serve listening on URL', once it listens.",
    )
    .option("--host <address>", "address to listen on (0.0.0.0 for every interface)", "127.0.0.1")
    .option("--port <n>", "port to listen on; 0 picks a free one", nonNegativeInteger("--port"), 8000)
    .option("--served-model-name <name>", "the policy's name in requests and /v1/models (default: deliberate-<policy> or the directory's name)")
    .option("--served-verifier-name <name>", "the verifier's name in /pooling requests and /v1/models (default: deliberate-<verifier>)")
    .option("--max-model-len <n>", "longest sequence (prompt and completion) a request may reach (default: the model's)", positiveInteger("--max-model-len"))
    .option("--prefix-cache-entries <n>", "most decoding states the prefix cache keeps (0 turns it off)", nonNegativeInteger("--prefix-cache-entries"), 4096)
    .option("--prefix-cache-mib <n>", "most MiB of decoding state the prefix cache keeps", nonNegativeInteger("--prefix-cache-mib"), 512)
    .addOption(new Option("--api-key <key>", "require this key on every request (Authorization: Bearer <key>); 401 otherwise").env("DELIBERATE_API_KEY"))
    .option("--max-body-kib <n>", "largest chat or completion request body in KiB (413 beyond)", positiveInteger("--max-body-kib"), 1024)
    .option("--max-budget <n>", "largest search budget a request may ask for (400 beyond)", positiveInteger("--max-budget"), 64)
    .option("--max-concurrent <n>", "searches running at once", positiveInteger("--max-concurrent"), 8)
    .option("--max-queue <n>", "searches waiting for a slot; beyond it a 429 with Retry-After", nonNegativeInteger("--max-queue"), 64)
    .option("--request-timeout <s>", "seconds a search may take, queue wait included, before it is stopped with a 504", positiveInteger("--request-timeout"), 120)
    .option("--grace-period <s>", "on SIGTERM, seconds the searches in flight may finish before they are stopped", nonNegativeInteger("--grace-period"), 30);
  for (const option of fileParamFlags(STRATEGIES)) command.addOption(option);
  addModelOptions(command).action((flags: ServeFlags) => serve(flags));
}
