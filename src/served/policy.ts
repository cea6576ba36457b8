/**
 * A Policy served over HTTP by vLLM (or `deliberate serve`, SGLang, llama.cpp or another
 * OpenAI-compatible server). Each step is one `/v1/completions` request, stopped at the step
 * delimiter. The server's prefix cache does what a local branch's state does.
 *
 * A branch keeps its prompt and steps as token ids where the server accepts them and returns the
 * ids it generated (vLLM's `return_token_ids`): the ids go back as `prompt` as they are, so a step
 * is never re-tokenized. Where it does not, the branch keeps text: the rendered chat template and
 * the steps, sent as a string, with tokens counted from `usage`. `promptMode` picks one, or "auto"
 * finds out from the server's first answer (see README, "Served models").
 *
 * With `batchN`, the branches of one `extend` that share a prompt (the children of one parent) go
 * as one request with `n`; the server then derives their samples from the first child's seed.
 */
import { z } from "zod";
import type { Branch, ExtendOptions, Policy, PolicyPrompt, StepResult, StopReason } from "../policy.js";
import { checkModel, describeCard, Endpoints, HttpStatusError, type HttpOptions } from "./http.js";
import { promptToMessages, type ChatMessage } from "./messages.js";
import { localRenderers, serverIdsRenderer, serverTextRenderer, type IdsRenderer, type TextRenderer } from "./prompt-format.js";
import { InputError } from "../errors.js";

/** How prompts travel: token ids, text, or ids until the server shows it cannot take or return them. */
export const PROMPT_MODES = ["tokens", "text", "auto"] as const;
export type PromptMode = (typeof PROMPT_MODES)[number];

export interface ServedPolicyOptions extends HttpOptions {
  /** The served model's id; needed when the server serves several. */
  model?: string;
  /** The string between steps; the completion stops there. Default a blank line. */
  stepDelimiter?: string;
  /** Parameter count, for FLOPs; without it FLOPs are reported as unknown. */
  parameters?: number | null;
  /**
   * A directory with the model's tokenizer_config.json (its `chat_template`) and tokenizer.json:
   * prompts are rendered and tokenized here. Without it, the server renders them.
   */
  chatTemplate?: string;
  /** Token ids, text, or "auto" (the default): ids, and text from the first answer without ids or a 400 refusing an id prompt. */
  promptMode?: PromptMode;
  /** One request with `n: k` for the k branches of an `extend` that share a prompt. Default false (see README). */
  batchN?: boolean;
  /** Where a switch to text prompts is said; default stderr. */
  onNotice?: (message: string) => void;
}

const completionSchema = z.object({
  choices: z.array(
    z.object({
      index: z.int().optional(),
      text: z.string(),
      finish_reason: z.string().nullable(),
      // vLLM: the stop string matched, a stop token id, or null for end of text. Absent on other servers.
      stop_reason: z.union([z.string(), z.number()]).nullish(),
      // SGLang's name for the same.
      matched_stop: z.union([z.string(), z.number()]).nullish(),
      token_ids: z.array(z.int()).nullish(),
      // Another server's logprobs shape is not an error: the step has no logprobs then.
      logprobs: z
        .object({ token_logprobs: z.array(z.number().nullable()) })
        .nullish()
        .catch(null),
    }),
  ),
  usage: z.object({ prompt_tokens: z.int(), completion_tokens: z.int() }).nullish(),
});
type Choice = z.output<typeof completionSchema>["choices"][number];

/** A 400 that says the prompt (plus max_tokens) is past the model's context length, in vLLM's wordings. */
const CONTEXT_LENGTH = /context length|maximum model length|too long/i;
/** A 400 that refuses the prompt itself (a server that takes no token ids), in "auto" mode a reason to send text. */
const PROMPT_REFUSED = /prompt/i;

/** A prompt as formatted for the server; shared by a root branch and its forks. */
interface FormattedPrompt {
  messages: ChatMessage[];
  /** Token ids, when formatted as ids. */
  ids: number[] | null;
  /** The rendered text, once it is needed (at start in text mode, at the switch in "auto"). */
  text: Promise<string> | null;
}

class ServedBranch implements Branch {
  steps: string[] = [];
  finished = false;
  generatedTokens = 0;
  /** The steps so far as the server's token ids (delimiters included); null once a step came back without ids. */
  stepIds: number[] | null = [];
  /** The steps so far as text, delimiters included. */
  stepText = "";

  constructor(
    readonly policy: ServedPolicy,
    readonly prompt: FormattedPrompt,
    readonly promptTokens: number,
    readonly startRetries: number,
  ) {}

  fork(): Branch {
    const copy = new ServedBranch(this.policy, this.prompt, this.promptTokens, this.startRetries);
    copy.steps = [...this.steps];
    copy.finished = this.finished;
    copy.generatedTokens = this.generatedTokens;
    copy.stepIds = this.stepIds === null ? null : [...this.stepIds];
    copy.stepText = this.stepText;
    return copy;
  }

  /** The server holds no state of its own for a branch (its prefix cache is its business). */
  release(): void {}

  /** Tokens so far (prompt and steps), when known: for the room left under max_model_len. */
  get contextTokens(): number {
    return this.promptTokens + this.generatedTokens;
  }
}

/** What a request's prompt is: ids, or text. */
type WirePrompt = { ids: number[] } | { text: string };

export class ServedPolicy implements Policy {
  /** "auto" until the server's first answer (or refusal) settles it. */
  private mode: PromptMode;

  constructor(
    readonly endpoints: Endpoints,
    readonly name: string,
    readonly fingerprint: string,
    readonly parameters: number | null,
    readonly stepDelimiter: string,
    private readonly maxModelLen: number | null,
    mode: PromptMode,
    private readonly renderIds: IdsRenderer | null,
    /** Finds how to render prompts to text; called when first needed (in "auto", perhaps never). */
    private readonly findTextRenderer: () => Promise<TextRenderer>,
    readonly batchN: boolean,
    private readonly notice: (message: string) => void,
  ) {
    this.mode = mode;
  }

  /** How prompts travel now: "auto" until the first answer settles it. */
  get promptMode(): PromptMode {
    return this.mode;
  }

  /** Requests sent again after a fault, over this policy's life. */
  get retries(): number {
    return this.endpoints.retries;
  }

  async start(prompt: PolicyPrompt): Promise<Branch> {
    const messages = promptToMessages(prompt);
    if (this.mode === "text") {
      const { text, tokens, retries } = await (await this.textRenderer())(messages);
      return new ServedBranch(this, { messages, ids: null, text: Promise.resolve(text) }, tokens, retries);
    }
    const { ids, retries } = await (this.renderIds as IdsRenderer)(messages);
    return new ServedBranch(this, { messages, ids, text: null }, ids.length, retries);
  }

  async extend(branches: readonly Branch[], options: ExtendOptions): Promise<StepResult[]> {
    if (options.seeds.length !== branches.length) throw new Error(`extend: ${branches.length} branches but ${options.seeds.length} seeds`);
    options.signal?.throwIfAborted();
    const own = branches.map((branch) => {
      if (!(branch instanceof ServedBranch) || branch.policy !== this) throw new Error("extend: not a branch of this policy");
      if (branch.finished) throw new Error("extend: a finished branch");
      return branch;
    });
    // One request per group, all at once: the endpoints' queues bound what is in flight.
    const results: StepResult[] = new Array<StepResult>(own.length);
    await Promise.all(
      this.groups(own).map(async (group) => {
        const steps = await this.step(
          group.map((i) => own[i] as ServedBranch),
          options.seeds[group[0] as number] as number,
          options,
        );
        group.forEach((i, j) => (results[i] = steps[j] as StepResult));
      }),
    );
    return results;
  }

  /** Indices of the branches that go in one request: with `batchN`, those at the same point of the same prompt; else one each. */
  private groups(branches: readonly ServedBranch[]): number[][] {
    if (!this.batchN) return branches.map((_, i) => [i]);
    // Forks share their root's prompt object; the steps' ids (or text) say where on it a branch is.
    const byPrompt = new Map<FormattedPrompt, Map<string, number[]>>();
    branches.forEach((branch, i) => {
      const byPoint = byPrompt.get(branch.prompt) ?? new Map<string, number[]>();
      byPrompt.set(branch.prompt, byPoint);
      const point = branch.stepIds === null ? `text:${branch.stepText}` : `ids:${branch.stepIds.join(",")}`;
      byPoint.set(point, [...(byPoint.get(point) ?? []), i]);
    });
    return [...byPrompt.values()].flatMap((byPoint) => [...byPoint.values()]);
  }

  /** Switches "auto" to text prompts, once, and says so. */
  private useText(reason: string): void {
    if (this.mode === "text") return;
    this.mode = "text";
    this.notice(`--policy ${this.endpoints.urls.join(",")}: ${reason}; prompts go as text from now on (--policy-prompt text to start so, tokens to refuse)`);
  }

  private textRendererFound: Promise<TextRenderer> | null = null;

  /** How prompts are rendered to text, found once. */
  textRenderer(): Promise<TextRenderer> {
    return (this.textRendererFound ??= this.findTextRenderer());
  }

  /**
   * The prompt of the next request of a branch: ids while the policy sends ids and the branch has
   * them, else text. A prompt's text is rendered once for the branch that needs it first (its
   * retries counted there) and shared with the other branches of that prompt.
   */
  private async wirePrompt(branch: ServedBranch, signal?: AbortSignal): Promise<{ prompt: WirePrompt; retries: number }> {
    if (this.mode !== "text" && branch.prompt.ids !== null && branch.stepIds !== null) return { prompt: { ids: [...branch.prompt.ids, ...branch.stepIds] }, retries: 0 };
    let retries = 0;
    if (branch.prompt.text === null) {
      const rendering = this.textRenderer().then((render) => render(branch.prompt.messages, signal));
      branch.prompt.text = rendering.then(({ text }) => text);
      // A failed rendering is thrown here; the shared promise rethrows it to later steps.
      branch.prompt.text.catch(() => undefined);
      retries = (await rendering).retries;
    }
    return { prompt: { text: (await branch.prompt.text) + branch.stepText }, retries };
  }

  /** One request for `group` (one branch, or with `batchN` several at the same point): each gets a choice. */
  private async step(group: ServedBranch[], seed: number, options: ExtendOptions): Promise<StepResult[]> {
    const first = group[0] as ServedBranch;
    const wire = await this.wirePrompt(first, options.signal);
    // Past the context length the server would refuse; max_tokens is cut to the room that is left.
    const used = "ids" in wire.prompt ? wire.prompt.ids.length : first.contextTokens;
    const room = this.maxModelLen === null ? Infinity : this.maxModelLen - used;
    if (room <= 0) return group.map((branch, j) => this.endBranch(branch, 0, j === 0 ? wire.retries : 0));
    const maxTokens = Math.min(options.maxStepTokens, room);
    const body = {
      model: this.name,
      ...("ids" in wire.prompt ? { prompt: wire.prompt.ids, return_token_ids: true } : { prompt: wire.prompt.text, add_special_tokens: false }),
      max_tokens: maxTokens,
      temperature: options.temperature,
      top_p: options.topP ?? 1,
      ...(options.topK === undefined ? {} : { top_k: options.topK }),
      seed,
      n: group.length,
      stop: [this.stepDelimiter],
      include_stop_str_in_output: true,
      logprobs: 0,
    };
    let answer: { value: z.output<typeof completionSchema>; retries: number };
    try {
      answer = await this.endpoints.request("base", "/completions", body, completionSchema, options.signal);
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 400) {
        if (CONTEXT_LENGTH.test(error.serverMessage)) return group.map((branch, j) => this.endBranch(branch, 1, j === 0 ? wire.retries : 0));
        if ("ids" in wire.prompt && this.mode === "auto" && PROMPT_REFUSED.test(error.serverMessage)) {
          this.useText(`the server refused a token-id prompt (400: ${error.serverMessage})`);
          return this.step(group, seed, options);
        }
      }
      throw error;
    }
    const { usage } = answer.value;
    // Choice j goes to branch j, by the choices' own index where they have one.
    const choices = answer.value.choices.toSorted((a, b) => (a.index ?? 0) - (b.index ?? 0));
    if (choices.length !== group.length) {
      const hint = group.length > 1 ? "; the server may not support n > 1: leave --policy-batch-n off" : "";
      throw new Error(`${this.endpoints.urls.join(", ")}: asked for ${group.length} choice(s) (n), got ${choices.length}${hint}`);
    }
    if ("ids" in wire.prompt) {
      const missing = choices.some((choice) => !choice.token_ids);
      if (missing && this.mode === "tokens") {
        throw new Error(`${this.endpoints.urls.join(", ")}: the completion has no token_ids; the server does not support return_token_ids (vLLM 0.10.2 or newer does); give --policy-prompt text or auto`);
      }
      if (missing) this.useText("the server returned no token_ids (return_token_ids)");
      else if (this.mode === "auto") this.mode = "tokens";
    }
    const retries = answer.retries + wire.retries;
    return group.map((branch, j) => this.takeChoice(branch, choices[j] as Choice, group.length === 1 ? usage?.completion_tokens : undefined, maxTokens, options, j === 0 ? retries : 0));
  }

  /** Appends one choice to its branch; `usageTokens` is the answer's completion_tokens when it has one choice only. */
  private takeChoice(branch: ServedBranch, choice: Choice, usageTokens: number | undefined, maxTokens: number, options: ExtendOptions, retries: number): StepResult {
    let text = choice.text;
    let stopReason: StopReason;
    // vLLM's stop_reason or SGLang's matched_stop names the stop; null there is the end of text.
    const matched = choice.stop_reason !== undefined ? choice.stop_reason : choice.matched_stop;
    if (choice.finish_reason === "length") stopReason = maxTokens < options.maxStepTokens ? "max-length" : "max-tokens";
    else if (matched === this.stepDelimiter) {
      stopReason = "delimiter";
      if (text.endsWith(this.stepDelimiter)) text = text.slice(0, -this.stepDelimiter.length);
      else if (choice.token_ids) throw new Error(`the server left the stop string out of the text although include_stop_str_in_output was set`);
    } else if (matched !== undefined) stopReason = "eos";
    else if (text.endsWith(this.stepDelimiter)) {
      stopReason = "delimiter";
      text = text.slice(0, -this.stepDelimiter.length);
    } else {
      // An OpenAI-style answer says "stop" for the stop string and for the end of text alike: a
      // step with text went to the delimiter; asked to go on, a model at its end stops at once.
      stopReason = text === "" ? "eos" : "delimiter";
    }
    const tokens = choice.token_ids?.length ?? usageTokens ?? choice.logprobs?.token_logprobs.length;
    if (tokens === undefined) throw new Error(`${this.endpoints.urls.join(", ")}: cannot tell the tokens of each of n choices (no token_ids, no logprobs); give --policy-batch-n off`);
    if (choice.token_ids && branch.stepIds !== null) branch.stepIds.push(...choice.token_ids);
    else branch.stepIds = null;
    branch.stepText += stopReason === "delimiter" ? text + this.stepDelimiter : text;
    // An empty step (a delimiter right away, or end of text) adds no step.
    if (text !== "") branch.steps.push(text);
    branch.finished = stopReason === "eos" || stopReason === "max-length";
    branch.generatedTokens += tokens;
    const logprobs = (choice.logprobs?.token_logprobs ?? []).filter((value): value is number => value !== null);
    return { text, tokens, logprobs, stopReason, calls: 1, retries };
  }

  /** Ends a branch that has no room left: a "max-length" step with no text. */
  private endBranch(branch: ServedBranch, calls: number, retries: number): StepResult {
    branch.finished = true;
    return { text: "", tokens: 0, logprobs: [], stopReason: "max-length", calls, retries };
  }

  async close(): Promise<void> {
    await this.endpoints.close();
  }
}

/**
 * Connects to a served policy: `urls` are replicas of one model (e.g. http://host:8000/v1). Checks
 * them before any work (reachable, OpenAI-compatible, the key, the model) and how prompts are
 * formatted (see served/prompt-format.ts); fails with an InputError that says which.
 */
export async function connectPolicy(urls: string | readonly string[], options: ServedPolicyOptions = {}): Promise<ServedPolicy> {
  const endpoints = new Endpoints(typeof urls === "string" ? [urls] : urls, options);
  const card = await checkModel(endpoints, options.model, "--policy");
  let mode = options.promptMode ?? "auto";
  const sample = promptToMessages({ problem: "1 + 1" });
  const notice = options.onNotice ?? stderrNotice;
  let renderIds: IdsRenderer | null = null;
  let findTextRenderer: () => Promise<TextRenderer>;
  if (options.chatTemplate !== undefined) {
    const local = await localRenderers(options.chatTemplate);
    renderIds = local.ids;
    findTextRenderer = () => Promise.resolve(local.text);
  } else {
    findTextRenderer = () => serverTextRenderer(endpoints, card.id, sample);
    if (mode !== "text") {
      renderIds = serverIdsRenderer(endpoints, card.id);
      try {
        await renderIds(sample);
      } catch (error) {
        const failed = `the server's /tokenize with messages failed (${error instanceof HttpStatusError ? `${error.status}: ${error.serverMessage}` : (error as Error).message})`;
        if (mode === "tokens") throw new InputError(`--policy ${endpoints.urls.join(",")}: ${failed}; give --chat-template DIR (the model's tokenizer_config.json and tokenizer.json)`);
        // "auto" on a server that renders no ids (llama.cpp): text, if it renders that.
        renderIds = null;
        mode = "text";
        notice(`--policy ${endpoints.urls.join(",")}: ${failed}; prompts go as text (--policy-prompt text says so at once)`);
      }
    }
  }
  const policy = new ServedPolicy(
    endpoints,
    card.id,
    // n: k samples differ from per-branch seeds: a bench resumed with the other setting is refused as another policy.
    options.batchN ? `${describeCard(card)} batch-n` : describeCard(card),
    options.parameters ?? null,
    options.stepDelimiter ?? "\n\n",
    card.max_model_len ?? null,
    mode,
    renderIds,
    findTextRenderer,
    options.batchN ?? false,
    notice,
  );
  // Text prompts are checked before any work, as ids are above.
  if (mode === "text") await policy.textRenderer();
  return policy;
}
const stderrNotice = (message: string) => void process.stderr.write(`deliberate: ${message}\n`);
