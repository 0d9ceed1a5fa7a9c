// A yes/no answer the webhook needs on every review without waiting (is the registry up, is the
// node role ready): probed in the background every interval, the last answer kept, concurrent
// refreshes sharing one probe, and each change of answer reported once.
export interface ProbeResult { up: boolean; detail: string }

export interface CachedProbe {
  /** The last answer; false until the first probe has answered. */
  current(): boolean;
  /** Probes now and updates the cached answer. */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

export function startCachedProbe(probe: () => Promise<ProbeResult>, options: { intervalMs: number; changed(result: ProbeResult): void }): CachedProbe {
  let state = false;
  let checked = false;
  let inFlight: Promise<boolean> | undefined;

  function refresh(): Promise<boolean> {
    inFlight ??= probe().then((result) => {
      if (!checked || result.up !== state) options.changed(result);
      state = result.up;
      checked = true;
      inFlight = undefined;
      return result.up;
    });
    return inFlight;
  }

  const timer = setInterval(() => void refresh(), options.intervalMs);
  timer.unref();
  return {
    current: () => state,
    refresh,
    async close() {
      clearInterval(timer);
      await inFlight;
    },
  };
}
