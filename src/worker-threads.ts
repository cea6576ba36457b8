/** Starting worker threads from compiled JavaScript, or from TypeScript sources (tests, tsx). */
import { Worker } from "node:worker_threads";

/**
 * A worker for `<name>.js` beside the calling module (`import.meta.url` of the caller). Running
 * from TypeScript sources, the worker is `<name>.ts` loaded through tsx's loader.
 */
export function startWorker(callerUrl: string, name: string, workerData?: unknown): Worker {
  if (callerUrl.endsWith(".ts")) {
    const source = JSON.stringify(new URL(`./${name}.ts`, callerUrl).href);
    return new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${source}); });`, { eval: true, workerData });
  }
  return new Worker(new URL(`./${name}.js`, callerUrl), { workerData });
}
