/**
 * Command-line flags for strategy parameters, made from the registered strategies' definitions, so
 * that no list of flags is kept by hand: one flag per parameter name (`beamWidth` is
 * `--beam-width`), its help from the schema's `.describe()`, its values from the schema (enum
 * choices, numbers, booleans), and one flag per file parameter (`--allocation`).
 */
import { Option } from "commander";
import { z } from "zod";
import type { Strategy } from "../strategy.js";
import { InputError } from "../errors.js";
import { positiveInteger } from "./model-options.js";

export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;

/** The schema under its default and optional wrappers. */
function valueSchema(schema: z.ZodType): z.ZodType {
  let inner = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = inner.def.innerType as z.ZodType;
  return inner;
}

function number(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new InputError(`${flag} must be a number, got "${value}"`);
    return parsed;
  };
}

/** The flag of one parameter, or null for a value a flag cannot give (an object). */
function optionOf(key: string, schema: z.ZodType, help: string): Option | null {
  const flag = flagName(key);
  const value = valueSchema(schema);
  if (value instanceof z.ZodEnum) return new Option(`${flag} <value>`, help).choices(value.options.map(String));
  if (value instanceof z.ZodBoolean) return new Option(flag, help);
  if (value instanceof z.ZodNumber) {
    const positiveInt = value.format !== null && value.format.includes("int") && (value.minValue ?? 0) >= 1;
    return new Option(`${flag} <n>`, help).argParser(positiveInt ? positiveInteger(flag) : number(flag));
  }
  return null;
}

export interface ParamFlag {
  /** The parameter's name in the strategies' schemas. */
  key: string;
  option: Option;
}

/**
 * A flag for every parameter of the strategies except `budget` (a flag of its own) and file
 * parameters (`fileParamFlags`). A parameter that at most half of the strategies take names them
 * in its help.
 */
export function strategyParamFlags(strategies: readonly Strategy[]): ParamFlag[] {
  const takers = new Map<string, { schema: z.ZodType; names: string[] }>();
  for (const strategy of strategies) {
    for (const [key, schema] of Object.entries(strategy.params.shape)) {
      if (key === "budget" || key in (strategy.fileParams ?? {})) continue;
      const known = takers.get(key) ?? { schema, names: [] };
      known.names.push(strategy.name);
      takers.set(key, known);
    }
  }
  return [...takers].flatMap(([key, { schema, names }]) => {
    const description = schema.description ?? key;
    const help = names.length <= strategies.length / 2 ? `${names.join(", ")}: ${description}` : description;
    const option = optionOf(key, schema, help);
    return option === null ? [] : [{ key, option }];
  });
}

/** One flag per file parameter's flag (`--allocation <file>`), with the strategies that take it in its help. */
export function fileParamFlags(strategies: readonly Strategy[]): Option[] {
  const byFlag = new Map<string, { description: string; names: string[] }>();
  for (const strategy of strategies) {
    for (const file of Object.values(strategy.fileParams ?? {})) {
      const known = byFlag.get(file.flag) ?? { description: file.description, names: [] };
      known.names.push(strategy.name);
      byFlag.set(file.flag, known);
    }
  }
  return [...byFlag].map(([flag, { description, names }]) => new Option(`${flag} <file>`, `${names.join(", ")}: ${description}`));
}

/** The path a file parameter of `strategy` was given by its flag, by parameter name (a missing flag: its default). */
export function fileParamsFromFlags(strategy: Strategy, flags: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(strategy.fileParams ?? {}).map(([key, file]) => [key, flags[new Option(`${file.flag} <file>`).attributeName()]]));
}
