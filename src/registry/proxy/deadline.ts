// Time limits on upstream exchanges. undici's own timeouts are per socket event (headers, gap
// between body chunks), so an upstream trickling a byte every few seconds never trips them: a
// Deadline bounds a whole exchange (a token, a manifest, the wait for a blob's headers), and a
// rate watch gives up on a blob body that arrives slower than a floor over a sliding window.

/** An upstream exchange that ran out of time; `what` names the exchange for the client and logs. */
export class UpstreamTimeout extends Error {
  constructor(readonly upstream: string, readonly what: string) {
    super(`upstream ${upstream} did not answer in time (${what})`);
    this.name = 'UpstreamTimeout';
  }
}

/** Aborts its signal with an UpstreamTimeout once `ms` have passed, unless cleared first. */
export class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(ms: number, readonly error: UpstreamTimeout) {
    this.timer = setTimeout(() => this.controller.abort(error), ms);
    // A pending deadline must not keep a process alive that has nothing else to do.
    this.timer.unref();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get expired(): boolean {
    return this.controller.signal.aborted;
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

/**
 * Waits for `promise`, but no longer than `signal` allows: for a result shared by several callers
 * (a token fetch), where one caller's deadline must not cancel the work for the others.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

export interface MinRate {
  /** 0 turns the watch off. */
  bytesPerSecond: number;
  windowMs: number;
}

/** How many samples a window is cut into: the check runs this many times per window. */
const SAMPLES_PER_WINDOW = 4;

/**
 * Calls `tooSlow` once if fewer than `bytesPerSecond` arrived on average over the last
 * `windowMs` (first checked one window after the start). `received` reads the running byte count,
 * so the watch needs no hook in the data path. Returns a function that stops the watch.
 */
export function watchRate(received: () => number, rate: MinRate, tooSlow: () => void): () => void {
  if (rate.bytesPerSecond <= 0 || rate.windowMs <= 0) return () => undefined;
  const samples: number[] = [received()];
  const floor = (rate.bytesPerSecond * rate.windowMs) / 1000;
  const timer = setInterval(() => {
    samples.push(received());
    // SAMPLES_PER_WINDOW + 1 samples span one window.
    if (samples.length <= SAMPLES_PER_WINDOW) return;
    if ((samples[SAMPLES_PER_WINDOW] as number) - (samples[0] as number) < floor) {
      clearInterval(timer);
      tooSlow();
      return;
    }
    samples.shift();
  }, rate.windowMs / SAMPLES_PER_WINDOW);
  timer.unref();
  return () => clearInterval(timer);
}
