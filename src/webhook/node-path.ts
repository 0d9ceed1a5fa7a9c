// Whether nodes can pull through the node role right now (webhook.rewriteTarget: node): its
// DaemonSet reports ready Pods. Read from the API every ~10 s in the background, so a review
// never waits on the apiserver; an API error counts as not ready (rewriting blind could send
// every Pod to ImagePullBackOff), with a warning in the log.
import type { Logger } from '../log.js';

export interface NodePath {
  ready(): boolean;
  /** Reads the DaemonSet now and updates the cached answer. */
  refresh(): Promise<boolean>;
  close(): Promise<void>;
}

export interface NodePathOptions {
  /** `status.numberReady` of the node role's DaemonSet. */
  readyPods(): Promise<number>;
  /** `namespace/name`, for the log. */
  daemonSet: string;
  logger: Logger;
  intervalMs?: number;
}

export function watchNodePath(options: NodePathOptions): NodePath {
  let state = false;
  let checked = false;
  let inFlight: Promise<boolean> | undefined;

  async function read(): Promise<{ ready: boolean; detail: string }> {
    try {
      const ready = await options.readyPods();
      return { ready: ready > 0, detail: `${ready} ready Pods` };
    } catch (err) {
      return { ready: false, detail: `cannot read it: ${(err as Error).message}` };
    }
  }

  function refresh(): Promise<boolean> {
    inFlight ??= read().then(({ ready, detail }) => {
      if (!checked || ready !== state) {
        if (ready) options.logger.info({ daemonSet: options.daemonSet, detail }, 'node role ready: Pods are rewritten to it');
        else options.logger.warn({ daemonSet: options.daemonSet, detail }, 'node role not ready; Pods keep their original images');
      }
      state = ready;
      checked = true;
      inFlight = undefined;
      return ready;
    });
    return inFlight;
  }

  const timer = setInterval(() => void refresh(), options.intervalMs ?? 10_000);
  timer.unref();
  return {
    ready: () => state,
    refresh,
    async close() {
      clearInterval(timer);
      await inFlight;
    },
  };
}
