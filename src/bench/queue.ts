/**
 * The resumable work loop of the bench and of calibration's difficulty pass: the items not done
 * yet run `concurrency` at a time (so that the model's batches stay full), and each result is
 * handed over as it comes, to be appended to the run's file at once, which is what lets a stopped
 * run resume where it stopped.
 */
import PQueue from "p-queue";

/**
 * Runs `work` on every item until all are done, `stop` is aborted, or one fails. `work` returns
 * null for an item it gave up on (stopped); `done` gets each result in the order they finish. The
 * first failure aborts `stop` (running items see it and may end early) and is thrown once the
 * running items have settled.
 */
export async function runQueue<I, R>(
  items: readonly I[],
  { concurrency, stop }: { concurrency: number; stop: AbortController },
  work: (item: I) => Promise<R | null>,
  done: (item: I, result: R) => void,
): Promise<void> {
  const queue = new PQueue({ concurrency });
  const onStop = () => queue.clear();
  stop.signal.addEventListener("abort", onStop, { once: true });
  const failures: unknown[] = [];
  try {
    for (const item of items) {
      queue
        .add(async () => {
          if (stop.signal.aborted) return;
          const result = await work(item);
          if (result !== null) done(item, result);
        })
        .catch((error: unknown) => {
          failures.push(error);
          stop.abort(error);
        });
    }
    await queue.onIdle();
  } finally {
    stop.signal.removeEventListener("abort", onStop);
  }
  if (failures.length > 0) throw failures[0];
}
