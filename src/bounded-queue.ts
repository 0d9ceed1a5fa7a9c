// Runs at most `concurrency` tasks at once, in arrival order, with at most `maxWaiting` tasks
// waiting; beyond that a task is refused at once. The webhook's prefetch uses one with no bound
// on waiting (its tasks are few and deduplicated). Password hashing goes through one too:
// scrypt runs on libuv's threadpool (4 threads by default), the pool every file read and write
// also waits in, first come first served, so unbounded hashing starves blob I/O. A full queue
// refuses rather than grows, so a flood costs a quick 429, not memory or minutes of waiting.

export interface QueueLimits {
  concurrency: number;
  maxWaiting: number;
}

export class QueueFull extends Error {
  constructor() {
    super('queue full');
    this.name = 'QueueFull';
  }
}

export class BoundedQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limits: QueueLimits) {
    if (!(limits.concurrency >= 1) || !(limits.maxWaiting >= 0)) throw new RangeError('a queue needs concurrency >= 1 and maxWaiting >= 0');
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `task` when a slot is free; rejects with QueueFull, without running it, when the queue is full. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.limits.concurrency) {
      this.running++;
    } else {
      if (this.waiting.length >= this.limits.maxWaiting) throw new QueueFull();
      // The finishing task hands its slot straight to us, so `running` never dips and no
      // later arrival can overtake a waiting one.
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
