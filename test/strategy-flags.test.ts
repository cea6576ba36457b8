import { describe, expect, it } from "vitest";
import { Command } from "commander";
import { STRATEGIES } from "../strategies/registry.js";
import { registerSolve, withFlagNames } from "../src/commands/solve.js";
import { fileParamFlags, strategyParamFlags } from "../src/commands/strategy-flags.js";

describe("strategy flags from the strategies' schemas", () => {
  it("documents every parameter of every strategy with .describe(), and gives each a flag or a file flag", () => {
    const flags = new Set(strategyParamFlags(STRATEGIES).map(({ key }) => key));
    for (const strategy of STRATEGIES) {
      for (const [key, schema] of Object.entries(strategy.params.shape)) {
        if (key in (strategy.fileParams ?? {})) continue;
        expect(schema.description, `${strategy.name}.${key}`).toBeTruthy();
        if (key !== "budget") expect(flags.has(key), `${strategy.name}.${key}`).toBe(true);
      }
    }
  });

  it("makes enum choices, numbers and booleans, and names the strategies of a rare parameter", () => {
    const byKey = new Map(strategyParamFlags(STRATEGIES).map(({ key, option }) => [key, option]));
    expect(byKey.get("select")?.argChoices).toEqual(["naive", "majority", "weighted"]);
    expect(byKey.get("beamWidth")?.flags).toBe("--beam-width <n>");
    expect(byKey.get("beamWidth")?.description).toMatch(/^beam, lookahead, dvts: /);
    expect(byKey.get("spread")?.flags).toBe("--spread");
    expect(() => byKey.get("ratio")?.parseArg?.("lots", undefined)).toThrow('--ratio must be a number, got "lots"');
    expect(fileParamFlags(STRATEGIES).map((option) => option.flags)).toEqual(["--allocation <file>"]);
  });

  it("solve has them all, and its errors name flags instead of parameters", () => {
    const program = new Command();
    registerSolve(program);
    const solve = program.commands[0] as Command;
    const names = solve.options.map((option) => option.long);
    for (const { option } of strategyParamFlags(STRATEGIES)) expect(names).toContain(option.long);
    expect(names).toContain("--allocation");
    expect(withFlagNames("budget 16 is not a multiple of beamWidth 5; maxSteps too")).toBe("--budget 16 is not a multiple of --beam-width 5; --max-steps too");
  });
});
