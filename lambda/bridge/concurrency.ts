/** Streams of one run moved side by side, each over its own connection: partners are independent. */
export const STREAMS_AT_ONCE = 4;

/** Runs `work` over `items` with at most `limit` at once; results keep the input order. Never rejects: `work` must. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Background tasks of a batch (its receipts), run while the batch's workers go on to their next transfer: at most
 * `limit` wait at once (a worker that would exceed it waits), and `drain()` resolves when all are done. On a
 * small-file batch this takes the receipt's S3 round trip off every file's critical path (docs/benchmarks.md). Tasks
 * must handle their own errors.
 */
export class Backlog {
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly limit: number) {}

  async add(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= Math.max(1, this.limit)) await Promise.race(this.running);
    const running: Promise<void> = task()
      .catch(() => undefined)
      .finally(() => this.running.delete(running));
    this.running.add(running);
  }

  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }
}
