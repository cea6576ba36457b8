/**
 * Vega-Lite specification -> SVG text, headless: vega-lite compiles the spec to Vega, and a Vega
 * View with the "none" renderer lays it out and serializes it (no canvas, no browser, no network:
 * the data is inline). Text widths are Vega's estimates, which is close enough for axis layout.
 */
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/**
 * Several of these SVGs go inline into one HTML page, so their clip-path ids must not collide:
 * Vega numbers them with a process-wide counter, which keeps them unique across renders.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
