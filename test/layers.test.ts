/**
 * The import graph of src/, strategies/, verifiers/ and datasets/ (DESIGN.md, "Layers"): every
 * file belongs to a declared layer, imports run from a layer to the same one or a lower one, never
 * up, and there is no import loop. Type-only imports count: they are dependencies of the design
 * even when they vanish at run time.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { STRATEGY_NAMES } from "../strategies/registry.js";

const ROOT = join(import.meta.dirname, "..");

/** Top to bottom; a file is in the first layer with a prefix of its path. */
const LAYERS: readonly { name: string; paths: readonly string[] }[] = [
  { name: "commands", paths: ["src/cli.ts", "src/program.ts", "src/index.ts", "src/commands/"] },
  { name: "report, calibration and the server", paths: ["src/report/", "src/calibration/", "src/serve/"] },
  { name: "bench", paths: ["src/bench/"] },
  { name: "solve", paths: ["src/solve.ts"] },
  { name: "strategies", paths: ["strategies/"] },
  { name: "search machinery", paths: ["src/search.ts"] },
  { name: "strategy contract", paths: ["src/strategy.ts"] },
  { name: "allocation table", paths: ["src/allocation/"] },
  { name: "runtime and served-model clients", paths: ["src/runtime/", "src/served/"] },
  {
    name: "datasets, verifiers and small shared modules",
    paths: ["datasets/", "verifiers/", "src/errors.ts", "src/files.ts", "src/random.ts", "src/meter.ts", "src/policy.ts", "src/worker-threads.ts"],
  },
];

function layerOf(file: string): number {
  return LAYERS.findIndex(({ paths }) => paths.some((path) => (path.endsWith("/") ? file.startsWith(path) : file === path)));
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+"(\.[^"]+)"|import\(\s*"(\.[^"]+)"\s*\)/g;

/** The project files a file imports (relative imports, `.js` read as the `.ts` source). */
export function importsOf(file: string, text: string): string[] {
  return [...text.matchAll(IMPORT)].map((match) => normalize(join(dirname(file), (match[1] ?? match[2]) as string)).replace(/\.js$/, ".ts"));
}

const FILES = ["src", "strategies", "verifiers", "datasets"].flatMap(sources);
const GRAPH = new Map(FILES.map((file) => [file, importsOf(file, readFileSync(join(ROOT, file), "utf8"))]));

/** An import loop, as the files around it, or null. */
function findLoop(graph: ReadonlyMap<string, readonly string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string): string[] | null => {
    if (state.get(file) === "done") return null;
    if (state.get(file) === "open") return [...stack.slice(stack.indexOf(file)), file];
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      const loop = visit(next);
      if (loop !== null) return loop;
    }
    stack.pop();
    state.set(file, "done");
    return null;
  };
  for (const file of graph.keys()) {
    const loop = visit(file);
    if (loop !== null) return loop;
  }
  return null;
}

describe("layers", () => {
  it("reads imports, re-exports and dynamic imports", () => {
    const text = 'import { a } from "./a.js";\nimport type { B } from "../b/b.js";\nexport { c } from "./c.js";\nconst d = await import("./d.js");\nimport { z } from "zod";';
    expect(importsOf("src/x/y.ts", text)).toEqual(["src/x/a.ts", "src/b/b.ts", "src/x/c.ts", "src/x/d.ts"]);
  });

  it("finds a loop", () => {
    expect(findLoop(new Map([["a", ["b"]], ["b", ["c"]], ["c", ["a"]]]))).toEqual(["a", "b", "c", "a"]);
    expect(findLoop(new Map([["a", ["b", "c"]], ["b", ["c"]], ["c", []]]))).toBeNull();
  });

  it("puts every file in a declared layer", () => {
    expect(FILES.length).toBeGreaterThan(50);
    expect(FILES.filter((file) => layerOf(file) === -1)).toEqual([]);
  });

  it("imports only from the same layer or a lower one", () => {
    const upward = [...GRAPH].flatMap(([file, imports]) =>
      imports.filter((target) => layerOf(target) !== -1 && layerOf(target) < layerOf(file)).map((target) => `${file} (${LAYERS[layerOf(file)]?.name}) imports ${target} (${LAYERS[layerOf(target)]?.name})`),
    );
    expect(upward).toEqual([]);
  });

  it("has no import loop", () => {
    expect(findLoop(GRAPH)).toBeNull();
  });

  it("never names a strategy in generic code: strategies declare what they need", () => {
    const names = STRATEGY_NAMES.join("|");
    const comparison = new RegExp(`[!=]==\\s*"(${names})"|"(${names})"\\s*[!=]==`);
    // Commands name configurations to offer, and the report's efficiency ratio is against best-of-N by definition (the paper's reference).
    const generic = FILES.filter((file) => file.startsWith("src/") && !file.startsWith("src/commands/") && !file.startsWith("src/report/"));
    expect(generic.filter((file) => comparison.test(readFileSync(join(ROOT, file), "utf8")))).toEqual([]);
  });
});
