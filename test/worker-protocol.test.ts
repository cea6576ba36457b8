/**
 * The model worker's protocol is typed end to end: WorkerClient's calls take the worker's method
 * names and parameter types (src/runtime/model-worker.ts). The checks are `@ts-expect-error` lines,
 * so `npm run typecheck` fails if a typo ever compiles again.
 */
import { describe, expect, it } from "vitest";
import type { WorkerClient } from "../src/runtime/worker-client.js";

describe("worker protocol", () => {
  it("refuses a misspelt method, a wrong parameter, and checks the result's type", () => {
    const misuse = async (client: WorkerClient) => {
      // @ts-expect-error: there is no method "extnd"
      await client.call("extnd", { requests: [] });
      // @ts-expect-error: release takes { branch }
      client.send("release", { brnch: 1 });
      const { promptTokens } = await client.call("start", { branch: 1, prompt: { problem: "P" } });
      // @ts-expect-error: promptTokens is a number
      const text: string = promptTokens;
      return text;
    };
    expect(typeof misuse).toBe("function");
  });
});
