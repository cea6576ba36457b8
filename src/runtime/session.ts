/** Creating ONNX Runtime sessions on a device, with deliberate session options and clear errors. */
import * as ort from "onnxruntime-node";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { InputError } from "../errors.js";

export type Device = "cpu" | "cuda" | "webgpu" | "auto";
export const DEVICES: readonly Device[] = ["cpu", "cuda", "webgpu", "auto"];

export interface SessionSettings {
  device: Device;
  /** Threads for one operator (intra-op). Default: all cores. */
  threads?: number;
  /**
   * Whether idle intra-op threads spin waiting for work (ONNX Runtime's default). A model run as
   * several graphs in turn (Mixture-of-Depths segments) turns it off: each session has its own
   * thread pool, and pools spinning beside the one at work take its cores.
   */
  spinning?: boolean;
}

const INSTALL_HINT: Record<Exclude<Device, "cpu" | "auto">, string> = {
  cuda:
    "the CUDA provider needs its libraries: with internet access and CUDA 12 + cuDNN 9 installed, run " +
    "`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`",
  webgpu: "the WebGPU provider (Dawn over Vulkan) needs a GPU with a Vulkan driver (libvulkan1 and the vendor's ICD)",
};

/**
 * Session options, chosen on purpose: all graph optimizations (the graphs are small and static),
 * sequential execution with one inter-op thread (a decoder step is a chain of small operators,
 * so parallelism comes from intra-op threads and from batching), and the CPU memory arena on.
 */
function sessionOptions(provider: Exclude<Device, "auto">, threads: number, spinning = true): ort.InferenceSession.SessionOptions {
  return {
    ...(spinning ? {} : { extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } } }),
    executionProviders: [provider],
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableCpuMemArena: true,
  };
}

/**
 * Whether onnxruntime-node has its CUDA provider library: the npm package does not bundle it (it is
 * downloaded by `ONNXRUNTIME_NODE_INSTALL=cuda12`), and without it ONNX Runtime can only fail.
 */
function cudaProviderInstalled(): boolean {
  const binding = join(dirname(createRequire(import.meta.url).resolve("onnxruntime-node")), "..", "bin", "napi-v6", process.platform, process.arch);
  return existsSync(join(binding, process.platform === "win32" ? "onnxruntime_providers_cuda.dll" : "libonnxruntime_providers_cuda.so"));
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session really runs on (auto resolves to one). */
  device: Exclude<Device, "auto">;
}

/** Opens a graph on the device; `auto` tries CUDA, then WebGPU, then falls back to the CPU. */
export async function openSession(path: string, settings: SessionSettings): Promise<OpenedSession> {
  const threads = settings.threads ?? availableParallelism();
  const candidates: Exclude<Device, "auto">[] = settings.device === "auto" ? ["cuda", "webgpu", "cpu"] : [settings.device];
  const failures: string[] = [];
  for (const device of candidates) {
    if (device === "cuda" && !cudaProviderInstalled()) {
      failures.push(`cuda: onnxruntime-node's CUDA provider library is not installed (${INSTALL_HINT.cuda})`);
      continue;
    }
    // A GPU provider that cannot load makes ONNX Runtime log its own error; ours below says it better.
    const logLevel = ort.env.logLevel;
    if (device !== "cpu") ort.env.logLevel = "fatal";
    try {
      return { session: await ort.InferenceSession.create(path, sessionOptions(device, threads, settings.spinning)), device };
    } catch (error) {
      const message = (error as Error).message.split("\n")[0] ?? String(error);
      if (device === "cpu") throw new InputError(`cannot load ${path}: ${message}`);
      failures.push(`${device}: ${message} (${INSTALL_HINT[device]})`);
    } finally {
      ort.env.logLevel = logLevel;
    }
  }
  throw new InputError(`device ${settings.device} cannot start for ${path}: ${failures.join("; ")}`);
}
