/** Numbered request/response calls to a model worker (model-worker.ts), typed by the worker's methods. */
import type { Worker } from "node:worker_threads";
import { InputError } from "../errors.js";
import type { WorkerMethods } from "./model-worker.js";

type Method = keyof WorkerMethods;
type ParamsOf<M extends Method> = Parameters<WorkerMethods[M]>[0];
type ResultOf<M extends Method> = Awaited<ReturnType<WorkerMethods[M]>>;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class WorkerClient {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private failure: Error | null = null;

  constructor(private readonly worker: Worker) {
    worker.on("message", (message: { id: number; result?: unknown; error?: { name: string; message: string } }) => {
      const call = this.pending.get(message.id);
      if (!call) return;
      this.settled(message.id);
      if (message.error) {
        // An InputError stays one across the thread boundary (the CLI and callers test for it).
        const error = message.error.name === "InputError" ? new InputError(message.error.message) : new Error(message.error.message);
        error.name = message.error.name;
        call.reject(error);
      } else {
        call.resolve(message.result);
      }
    });
    worker.on("error", (error: Error) => this.fail(error));
    worker.on("exit", (code) => this.fail(new Error(`model worker exited with code ${code}`)));
    // The worker keeps the process alive only while a call is waiting for it.
    worker.unref();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const [id, call] of this.pending) {
      this.settled(id);
      call.reject(error);
    }
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
  }

  call<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    if (this.pending.size === 0) this.worker.ref();
    return new Promise<ResultOf<M>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage({ id, method, params });
    });
  }

  /** A call whose answer nobody waits for (fork, release); messages stay in order with later calls. */
  send<M extends Method>(method: M, params: ParamsOf<M>): void {
    this.call(method, params).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (!this.failure) await this.call("close", undefined).catch(() => undefined);
    this.failure ??= new Error("model worker closed");
    await this.worker.terminate();
  }
}
