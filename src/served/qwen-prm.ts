/**
 * The input convention of Qwen2.5-Math-PRM-7B (its model card's usage example): a chat with its
 * system prompt, the problem as the user message, and the steps as the assistant message, each step
 * followed by the step tag `<extra_0>`, rendered with the Qwen2.5 chat template. vLLM's `/pooling`
 * (`task: token_classify`) returns one `[p_negative, p_positive]` row per step tag.
 *
 * The HTTP verifier renders requests with `renderQwenPrmInput`; `deliberate serve` reads them back
 * with `parseQwenPrmInput` to score them with a PRM it hosts.
 */

export const QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}.";
export const QWEN_PRM_STEP_TAG = "<extra_0>";

const USER_START = "<|im_start|>user\n";
const ASSISTANT_START = "<|im_start|>assistant\n";
const END = "<|im_end|>\n";

/** The text the Qwen2.5 chat template renders for (system, problem, steps joined and ended by the step tag). */
export function renderQwenPrmInput(problem: string, steps: readonly string[]): string {
  const response = steps.map((step) => `${step}${QWEN_PRM_STEP_TAG}`).join("");
  return `<|im_start|>system\n${QWEN_PRM_SYSTEM}${END}${USER_START}${problem}${END}${ASSISTANT_START}${response}${END}`;
}

/** The problem and steps of a text in the `renderQwenPrmInput` form, or null when it is not in that form. */
export function parseQwenPrmInput(text: string): { problem: string; steps: string[] } | null {
  const userAt = text.indexOf(USER_START);
  const assistantAt = text.lastIndexOf(ASSISTANT_START);
  if (userAt < 0 || assistantAt < userAt) return null;
  const problemEnd = text.lastIndexOf(END, assistantAt);
  if (problemEnd < userAt) return null;
  const problem = text.slice(userAt + USER_START.length, problemEnd);
  let response = text.slice(assistantAt + ASSISTANT_START.length);
  if (response.endsWith(END)) response = response.slice(0, -END.length);
  else if (response.endsWith("<|im_end|>")) response = response.slice(0, -"<|im_end|>".length);
  if (!response.endsWith(QWEN_PRM_STEP_TAG)) return null;
  const steps = response.slice(0, -QWEN_PRM_STEP_TAG.length).split(QWEN_PRM_STEP_TAG);
  return { problem, steps };
}
