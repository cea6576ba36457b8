/**
 * A model's worker thread. ONNX Runtime's `run` blocks the thread it is called on, so each model
 * runs here and the main thread's event loop stays free for the scheduler, progress and servers.
 * The main thread talks to it through WorkerClient (worker-client.ts) with numbered requests.
 */
import { parentPort } from "node:worker_threads";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { InputError } from "../errors.js";
import type { PolicyPrompt } from "../policy.js";
import { DecoderEngine, type ExtendRequest } from "./decoder-engine.js";
import { EmbeddedGraphs, HuggingFaceGraphs, LoopGraph, type DecoderGraphs } from "./graphs.js";
import { ModGraphs } from "./mod-graphs.js";
import { RecursiveDecoderEngine } from "./recursive-engine.js";
import { fingerprintModel, readModelDirectory, type EmbeddedPromptFormat } from "./model-config.js";
import { PrmEngine, type PrmRequest } from "./prm-engine.js";
import { chatRenderer, embeddedRenderer, fitPrompt, interleavedRevisionLines, type InjectedLines, type PromptOverflow, type PromptRenderer } from "./prompt.js";
import { openSession, type Device } from "./session.js";
import { checkGraphNames } from "./model-config.js";

export interface LoadParams {
  dir: string;
  device: Device;
  threads?: number;
  maxStateBytes: number;
  /** Overrides the model's own limit on sequence length. */
  maxSequenceTokens?: number;
  maxBatchTokens: number;
  /** A prompt above the model's limit: refused (default), or its problem truncated. */
  promptOverflow?: PromptOverflow;
  /** Recursive models: the early-exit threshold, or "off" (every loop runs). Default: the model's. */
  exitThreshold?: number | "off";
  /** Recursive models: depth-wise batching of rows at different loops (default true). */
  depthBatching?: boolean;
}

/** What a recursive model decodes with (ModelInfo.recursion). */
export interface RecursionInfo {
  loops: number;
  /** FLOPs of one loop for one token (config.json recursion.flops_per_loop_token). */
  flopsPerLoopToken: number;
  /**
   * What an exited token leaves in the loops it skipped: the state copy ("copy", copy.onnx) or
   * nothing ("none", older exports); config.json recursion.exit.skipped.
   */
  skipped: "none" | "copy";
  /** FLOPs of one state copy (one skipped loop) for one token; 0 without the copy. */
  flopsPerCopyToken: number;
  /** null: exits off. */
  exitThreshold: number | null;
  depthBatching: boolean;
}

export interface ModelInfo {
  kind: "decoder" | "prm";
  name: string;
  parameters: number;
  device: string;
  stepDelimiter: string;
  /** A hash of the model's files (fingerprintModel). */
  fingerprint: string;
  /** Longest sequence (prompt and output) the model takes. */
  maxSequenceTokens: number;
  /** Bytes of one branch's decoding state: `fixed + perToken * length` (0 for a PRM). */
  stateBytes: { fixed: number; perToken: number };
  /** The largest token id the tokenizer knows (decoders); a prompt given as token ids must stay within it. */
  maxTokenId?: number;
  /** Recursive models only: loops, FLOPs per loop and token, and the decoding mode. */
  recursion?: RecursionInfo;
  /**
   * Mixture-of-Depths models: FLOPs per token fed through the graphs (every token) and per token
   * that goes through each routed block, so that FLOPs count only the work really done.
   */
  routing?: { routedBlocks: number[]; flopsPerToken: number; flopsPerRoutedToken: number[] };
}

interface LoadedDecoder {
  engine: DecoderEngine;
  render: PromptRenderer;
  /** The lines an interleaved reviser is fed before its steps; null for other prompts and models. */
  revisionLines: (prompt: PolicyPrompt) => InjectedLines | null;
  tokenizer: Tokenizer;
  /** The longest prompt the model takes, in tokens, and where that limit comes from. */
  maxPromptTokens: number;
  limitSource: string;
  promptOverflow: PromptOverflow;
}

let decoder: LoadedDecoder | null = null;
let prm: PrmEngine | null = null;
/** Forks that failed (memory cap): the error is reported when the branch is next used. */
const failedForks = new Map<number, string>();

function tokenizerFor(json: unknown, config: Record<string, unknown> = {}): Tokenizer {
  return new Tokenizer(json as object, config);
}

async function load(params: LoadParams): Promise<ModelInfo> {
  const model = readModelDirectory(params.dir);
  const settings = { device: params.device, ...(params.threads ? { threads: params.threads } : {}) };
  const fingerprint = await fingerprintModel(model);
  if (model.kind === "embedded-prm") {
    const path = join(model.dir, model.config.graphs.scores.file);
    const { session, device } = await openSession(path, settings);
    checkGraphNames(model.config.graphs.scores, session, path);
    prm = new PrmEngine(session, tokenizerFor(model.tokenizer), {
      bosTokenId: model.config.bos_token_id,
      padTokenId: model.config.pad_token_id,
      stepDelimiter: model.config.step_delimiter,
      rendering: model.config.rendering ?? "ordinary",
      maxBatchTokens: params.maxBatchTokens,
      maxSequenceTokens: model.config.max_sequence_tokens ?? 4096,
      limitSource: model.config.max_sequence_tokens === undefined ? "the default, 4096" : `max_sequence_tokens in ${join(model.dir, "config.json")}`,
    });
    return {
      kind: "prm",
      name: model.config.name,
      parameters: model.config.parameters,
      device,
      stepDelimiter: model.config.step_delimiter,
      fingerprint,
      maxSequenceTokens: model.config.max_sequence_tokens ?? 4096,
      stateBytes: { fixed: 0, perToken: 0 },
    };
  }
  let graphs: DecoderGraphs;
  let tokenizer: Tokenizer;
  let render: PromptRenderer;
  let revisionLines: LoadedDecoder["revisionLines"] = () => null;
  let info: Pick<ModelInfo, "name" | "parameters" | "stepDelimiter">;
  let eosTokenIds: number[];
  let maxSequenceTokens: number;
  let limitSource: string;
  let loopGraph: LoopGraph | null = null;
  let recursion: RecursionInfo | undefined;
  const recursive = model.kind === "embedded-decoder" ? model.config.recursion : undefined;
  if (!recursive && (params.exitThreshold !== undefined || params.depthBatching !== undefined)) {
    const flag = params.exitThreshold !== undefined ? "exit threshold (--exit-threshold)" : "depth-wise batching (--depth-batching)";
    throw new Error(`${params.dir} is not a recursive model: an ${flag} applies only to a model with early exit, such as --policy recursive`);
  }
  let routing: ModelInfo["routing"];
  if (model.kind === "embedded-mod") {
    const config = model.config;
    tokenizer = tokenizerFor(model.tokenizer);
    refuseInterleavedRevision(config.prompt_format, model.dir, "a Mixture-of-Depths model");
    graphs = await ModGraphs.open(model.dir, config, settings);
    render = embeddedRenderer(config.prompt_format, tokenizer, config.bos_token_id, config.step_delimiter);
    info = { name: config.name, parameters: config.parameters, stepDelimiter: config.step_delimiter };
    eosTokenIds = [config.eos_token_id];
    maxSequenceTokens = config.max_prefill_tokens ?? 4096;
    limitSource = config.max_prefill_tokens === undefined ? "the default, 4096" : `max_prefill_tokens in ${join(model.dir, "config.json")}`;
    const routedBlocks = config.architecture.routed_blocks;
    routing = {
      routedBlocks,
      flopsPerToken: config.flops.per_token,
      flopsPerRoutedToken: routedBlocks.map((block) => {
        const flops = config.flops.per_routed_block[String(block)];
        if (flops === undefined) throw new Error(`${join(model.dir, "config.json")}: flops.per_routed_block has no block ${block}`);
        return flops;
      }),
    };
  } else if (model.kind === "embedded-decoder") {
    tokenizer = tokenizerFor(model.tokenizer);
    checkVocabulary(tokenizer, vocabularyOf(model.config.graphs.decode.outputs), model.dir);
    if (recursive) refuseInterleavedRevision(model.config.prompt_format, model.dir, "a recursive model");
    graphs = await EmbeddedGraphs.open(model.dir, model.config, settings);
    if (recursive) {
      loopGraph = await LoopGraph.open(model.dir, model.config, { ...settings, device: graphs.device });
      const threshold = params.exitThreshold ?? recursive.exit.default_threshold;
      recursion = {
        loops: recursive.loops,
        flopsPerLoopToken: recursive.flops_per_loop_token,
        skipped: recursive.exit.skipped ?? "none",
        flopsPerCopyToken: recursive.flops_per_copy_token ?? 0,
        exitThreshold: threshold === "off" ? null : threshold,
        depthBatching: params.depthBatching ?? true,
      };
    }
    render = embeddedRenderer(model.config.prompt_format, tokenizer, model.config.bos_token_id, model.config.step_delimiter);
    revisionLines = interleavedRevisionLines(model.config.prompt_format, tokenizer, model.config.step_delimiter);
    info = { name: model.config.name, parameters: model.config.parameters, stepDelimiter: model.config.step_delimiter };
    eosTokenIds = [model.config.eos_token_id];
    maxSequenceTokens = model.config.max_prefill_tokens ?? 4096;
    limitSource = model.config.max_prefill_tokens === undefined ? "the default, 4096" : `max_prefill_tokens in ${join(model.dir, "config.json")}`;
  } else {
    tokenizer = tokenizerFor(model.tokenizer, model.tokenizerConfig);
    checkVocabulary(tokenizer, model.config.vocab_size, model.dir);
    graphs = await HuggingFaceGraphs.open(model.graph, model.config, settings);
    render = chatRenderer(tokenizer, model.tokenizerConfig);
    const eos = model.config.eos_token_id;
    eosTokenIds = eos === undefined ? [] : Array.isArray(eos) ? eos : [eos];
    const { num_hidden_layers: layers, hidden_size: hidden, vocab_size: vocab } = model.config;
    // config.json has no parameter count; 12 x layers x hidden^2 + embeddings is the usual estimate.
    info = { name: model.dir, parameters: 12 * layers * hidden * hidden + vocab * hidden, stepDelimiter: "\n\n" };
    maxSequenceTokens = Number(model.config.max_position_embeddings ?? 4096);
    limitSource = model.config.max_position_embeddings === undefined ? "the default, 4096" : `max_position_embeddings in ${join(model.dir, "config.json")}`;
  }
  if (params.maxSequenceTokens !== undefined) {
    maxSequenceTokens = params.maxSequenceTokens;
    limitSource = "the maxSequenceTokens load option";
  }
  const engineSettings = { stepDelimiter: info.stepDelimiter, eosTokenIds, maxSequenceTokens, maxStateBytes: params.maxStateBytes };
  const engine =
    loopGraph && recursion
      ? new RecursiveDecoderEngine(graphs, loopGraph, tokenizer, engineSettings, { exitThreshold: recursion.exitThreshold, depthBatching: recursion.depthBatching })
      : new DecoderEngine(graphs, tokenizer, engineSettings);
  // A prompt must leave room for at least one generated token.
  decoder = { engine, render, revisionLines, tokenizer, maxPromptTokens: maxSequenceTokens - 1, limitSource, promptOverflow: params.promptOverflow ?? "error" };
  // State size is linear in the length (fixed-size tensors plus caches that grow by a row per token).
  const stateBytes = { fixed: engine.stateBytes(0), perToken: engine.stateBytes(1) - engine.stateBytes(0) };
  const maxTokenId = Math.max(...tokenizer.get_vocab(true).values());
  return { kind: "decoder", device: graphs.device, fingerprint, ...info, maxSequenceTokens, stateBytes, maxTokenId, ...(recursion ? { recursion } : {}), ...(routing ? { routing } : {}) };
}

/**
 * The interleaved revision layout feeds lines inside a step's decoding, which only the plain
 * decoding loop does, and whose FLOPs only 2 x parameters x tokens counts right.
 */
function refuseInterleavedRevision(format: EmbeddedPromptFormat, dir: string, what: string): void {
  if (typeof format.revision === "object") {
    throw new InputError(`${join(dir, "config.json")}: prompt_format.revision: the interleaved layout is not supported for ${what}`);
  }
}

function vocabularyOf(outputs: { name: string; shape: (string | number)[] }[]): number | null {
  const logits = outputs.find((output) => output.name === "logits");
  const vocab = logits?.shape[logits.shape.length - 1];
  return typeof vocab === "number" ? vocab : null;
}

/** A tokenizer with ids beyond the model's vocabulary would index logits that do not exist. */
function checkVocabulary(tokenizer: Tokenizer, vocabSize: number | null, dir: string): void {
  if (vocabSize === null) return;
  const largestId = Math.max(...tokenizer.get_vocab(true).values());
  if (largestId >= vocabSize) {
    throw new Error(`${dir}: tokenizer.json has token id ${largestId}, beyond the model's vocabulary of ${vocabSize}`);
  }
}

function loadedDecoder(): LoadedDecoder {
  if (!decoder) throw new Error("no decoder loaded in this worker");
  return decoder;
}

function assertNotFailed(branches: number[]): void {
  for (const branch of branches) {
    const failure = failedForks.get(branch);
    if (failure) throw new Error(failure);
  }
}

/** The worker's methods; WorkerClient's calls are typed by them, so a misspelt method or a wrong parameter does not compile. */
const methods = {
  load,
  async start(params: { branch: number; prompt: PolicyPrompt }) {
    const { engine: decoderEngine, render, revisionLines, maxPromptTokens, limitSource, promptOverflow } = loadedDecoder();
    // Bounded before the prefill, whose memory grows with the prompt's length.
    const tokens = fitPrompt(render, params.prompt, maxPromptTokens, promptOverflow, limitSource);
    const routedTokens = await decoderEngine.start(params.branch, tokens, revisionLines(params.prompt) ?? undefined);
    return { promptTokens: tokens.length, ...(routedTokens ? { routedTokens } : {}) };
  },
  async startTokens(params: { branch: number; tokens: readonly number[] }) {
    await loadedDecoder().engine.start(params.branch, [...params.tokens]);
    return null;
  },
  async append(params: { branch: number; tokens: readonly number[] }) {
    assertNotFailed([params.branch]);
    await loadedDecoder().engine.append(params.branch, params.tokens);
    return null;
  },
  render(params: { prompt: PolicyPrompt }) {
    const { render, revisionLines } = loadedDecoder();
    if (revisionLines(params.prompt) !== null) {
      throw new InputError("this model revises in the interleaved layout, which feeds the previous attempt step by step while decoding: a revision prompt has no token ids of its own");
    }
    return render(params.prompt);
  },
  tokenize(params: { text: string; addSpecialTokens: boolean }) {
    return loadedDecoder().tokenizer.encode(params.text, { add_special_tokens: params.addSpecialTokens }).ids;
  },
  detokenize(params: { tokens: number[] }) {
    return loadedDecoder().tokenizer.decode(params.tokens, { skip_special_tokens: false });
  },
  fork(params: { parent: number; child: number }) {
    try {
      loadedDecoder().engine.fork(params.parent, params.child);
    } catch (error) {
      failedForks.set(params.child, (error as Error).message);
    }
    return null;
  },
  release(params: { branch: number }) {
    failedForks.delete(params.branch);
    loadedDecoder().engine.release(params.branch);
    return null;
  },
  extend(params: { requests: ExtendRequest[] }) {
    assertNotFailed(params.requests.map((request) => request.branch));
    return loadedDecoder().engine.extend(params.requests);
  },
  score(params: { requests: PrmRequest[] }) {
    if (!prm) throw new Error("no PRM loaded in this worker");
    return prm.score(params.requests);
  },
  stats(params: { lengths?: number[] }) {
    const decoderEngine = decoder?.engine;
    return {
      liveBranches: decoderEngine?.liveBranches() ?? 0,
      heldStateBytes: decoderEngine?.heldStateBytes() ?? 0,
      stateBytesAt: (params.lengths ?? []).map((length) => decoderEngine?.stateBytes(length) ?? 0),
      decodeRuns: decoderEngine?.decodeRuns ?? 0,
      prmRuns: prm?.runs ?? 0,
    };
  },
  async close(_params: undefined) {
    await decoder?.engine.close();
    await prm?.close();
    return null;
  },
} satisfies Record<string, (params: never) => unknown>;
export type WorkerMethods = typeof methods;

parentPort?.on("message", async (message: { id: number; method: string; params: unknown }) => {
  try {
    const method: ((params: never) => unknown) | undefined = Object.hasOwn(methods, message.method) ? methods[message.method as keyof WorkerMethods] : undefined;
    if (!method) throw new Error(`unknown method ${message.method}`);
    const result = await method(message.params as never);
    parentPort?.postMessage({ id: message.id, result });
  } catch (error) {
    const { name, message: text } = error as Error;
    parentPort?.postMessage({ id: message.id, error: { name, message: text } });
  }
});
