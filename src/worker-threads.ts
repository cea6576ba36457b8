/** Starting worker threads from compiled JavaScript, or from TypeScript sources (tests, tsx). */
import { Worker } from "node:worker_threads";

/**
 * The stack of a worker thread, in MiB (Node's default is 4). Creating an ONNX Runtime session
 * reads the process's command line (/proc/self/cmdline) with stack use that grows with its length,
 * about 400 bytes a character: with 4 MiB, a 16,000-character problem given on the command line
 * crashed the process with a segmentation fault. 64 MiB covers Linux's longest single argument
 * (128 KiB); the memory is reserved, not resident.
 */
const WORKER_STACK_MB = 64;

/**
 * A worker for `<name>.js` beside the calling module (`import.meta.url` of the caller). Running
 * from TypeScript sources, the worker is `<name>.ts` loaded through tsx's loader.
 */
export function startWorker(callerUrl: string, name: string, workerData?: unknown): Worker {
  const options = { workerData, resourceLimits: { stackSizeMb: WORKER_STACK_MB } };
  if (callerUrl.endsWith(".ts")) {
    const source = JSON.stringify(new URL(`./${name}.ts`, callerUrl).href);
    // Resolved here: an eval'd worker would resolve "tsx" from the working directory, which may be any.
    const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
    return new Worker(`import(${tsx}).then((tsx) => { tsx.register(); return import(${source}); });`, { ...options, eval: true });
  }
  return new Worker(new URL(`./${name}.js`, callerUrl), options);
}
