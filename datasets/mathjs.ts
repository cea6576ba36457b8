/**
 * The project's mathjs instance, restricted as mathjs's security guidance says: nothing that
 * parses, compiles or evaluates expression strings, and nothing that changes the instance
 * (`import`, `createUnit`), is callable. Values are built from already-parsed trees and numbers,
 * never from text a model wrote. Loading mathjs takes a while, so it is loaded on first use: a
 * grading worker that never needs exact arithmetic never pays for it.
 */
import { createRequire } from "node:module";
import type { Fraction, MathJsInstance } from "mathjs";

const DISABLED = ["import", "createUnit", "reviver", "evaluate", "parse", "compile", "simplify", "derivative", "resolve", "rationalize"];

let instance: MathJsInstance | undefined;

export function restrictedMath(): MathJsInstance {
  if (instance) return instance;
  const mathjs = createRequire(import.meta.url)("mathjs") as typeof import("mathjs");
  const math = mathjs.create(mathjs.all as NonNullable<typeof mathjs.all>);
  const disabled = (name: string) => () => {
    throw new Error(`mathjs ${name} is disabled`);
  };
  math.import(Object.fromEntries(DISABLED.map((name) => [name, disabled(name)])), { override: true });
  instance = math;
  return math;
}

export type { Fraction };
