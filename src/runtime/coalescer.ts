/**
 * Serializes the calls to one model worker and coalesces them: the items of every call made while
 * the previous batch runs (or in the same turn of the event loop) go to the worker as one batch,
 * so several problems searched at once share each batched graph run.
 */
import PQueue from "p-queue";

interface PendingCall<I, O> {
  items: readonly I[];
  resolve: (outputs: O[]) => void;
  reject: (error: Error) => void;
}

export class Coalescer<I, O> {
  private readonly queue = new PQueue({ concurrency: 1 });
  private pending: PendingCall<I, O>[] = [];

  constructor(private readonly runBatch: (items: I[]) => Promise<O[]>) {}

  /** The outputs for `items`, in order, computed in a batch with whatever else is waiting. */
  submit(items: readonly I[]): Promise<O[]> {
    return new Promise((resolve, reject) => {
      this.pending.push({ items, resolve, reject });
      void this.queue.add(() => this.flush());
    });
  }

  /**
   * Runs a task that must not overlap a batch (loading a prompt, say). Such tasks go before waiting
   * batches: the callers whose prompts load now can then join the next batch instead of a later one.
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.queue.add(task, { priority: 1 });
  }

  private async flush(): Promise<void> {
    // Let the calls made in the same turn of the event loop join this batch.
    await new Promise((resolve) => setImmediate(resolve));
    const calls = this.pending;
    this.pending = [];
    if (calls.length === 0) return;
    let outputs: O[];
    try {
      outputs = await this.runBatch(calls.flatMap((call) => call.items));
    } catch (error) {
      for (const call of calls) call.reject(error as Error);
      return;
    }
    let offset = 0;
    for (const call of calls) {
      call.resolve(outputs.slice(offset, offset + call.items.length));
      offset += call.items.length;
    }
  }

  onIdle(): Promise<void> {
    return this.queue.onIdle();
  }
}
