/**
 * How a PolicyPrompt travels to a served model as chat messages. The HTTP policy client sends these
 * to the server's `/tokenize` (or renders them with a chat template it was given), and
 * `deliberate serve` maps them back to a PolicyPrompt for the models it hosts, so both ends agree on
 * one convention:
 *
 * - a system message with the instruction;
 * - the problem as the first user message, verbatim;
 * - for a revision, each earlier attempt as an assistant message followed by a user message asking
 *   for a corrected solution.
 */
import type { PolicyPrompt } from "../policy.js";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export const SOLVE_INSTRUCTION =
  "Solve the following math problem step by step. Separate the steps with a blank line, and put the final answer in \\boxed{}.";
export const REVISE_REQUEST = "This attempt may contain mistakes. Write a corrected solution.";

export function promptToMessages(prompt: PolicyPrompt): ChatMessage[] {
  const messages: ChatMessage[] = [
    { role: "system", content: SOLVE_INSTRUCTION },
    { role: "user", content: prompt.problem },
  ];
  for (const attempt of prompt.previousAttempts ?? []) {
    messages.push({ role: "assistant", content: attempt }, { role: "user", content: REVISE_REQUEST });
  }
  return messages;
}

/** The inverse of `promptToMessages`: the first user message is the problem, assistant messages are earlier attempts. */
export function messagesToPrompt(messages: readonly ChatMessage[]): PolicyPrompt {
  const problem = messages.find((message) => message.role === "user")?.content;
  if (problem === undefined) throw new Error("messages: no user message (the problem)");
  const previousAttempts = messages.filter((message) => message.role === "assistant").map((message) => message.content);
  return previousAttempts.length > 0 ? { problem, previousAttempts } : { problem };
}
