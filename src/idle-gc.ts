// One full garbage collection when a server falls quiet. V8 collects when its heap or external
// memory grows past a limit, not when the process goes idle: after a start-up, an upload or a
// burst of GETs the garbage they left (buffers, the young generation grown to its maximum) stays
// resident until the next burst, 15-35 MiB in a process that holds 40 MiB of its own (issue 16).
// Node sends V8 no idle notifications, so this collects when no request has been in flight for
// `quietMs` after some activity; under steady traffic it never runs. Each quiet spell gets two
// collections, one check apart: V8 gives back the young generation it grew to (up to two
// semi-spaces, 8 MiB with the image's 4 MiB) only in a collection that sees a low allocation
// rate, and the first one after a burst measures the burst. The second took the webhook role at
// rest by 4-5 MiB.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = () => void;

/** An HTTP or HTTPS server: what `track` listens to. */
export interface RequestEmitter {
  on(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
}

let collect: Collect | undefined;

/** V8's gc(), reached without --expose-gc: the flag applies to contexts created after it is set. */
function fullGc(): Collect {
  if (collect) return collect;
  const exposed = (globalThis as { gc?: Collect }).gc;
  if (exposed) return (collect = exposed);
  setFlagsFromString('--expose-gc');
  collect = runInNewContext('gc') as Collect;
  return collect;
}

/**
 * A full collection that also compacts every page of the old generation. V8 compacts only pages
 * it judges fragmented enough; at rest the pages start-up left part-filled stay committed (the
 * registry's old space at 12.2-12.5 MiB for 9.6-9.8 live, compacted 10.2: its RSS at rest 64.1-64.4
 * MiB instead of 66.2-66.6, 3 runs each). The flag is V8's own and is read when a collection
 * starts; it is on only for this one, so collections under load keep their usual cost.
 */
function compactingGc(gc: Collect): Collect {
  return () => {
    setFlagsFromString('--compact-on-every-full-gc');
    try {
      gc();
    } finally {
      setFlagsFromString('--no-compact-on-every-full-gc');
    }
  };
}

export interface IdleGc {
  /** Counts a request from its start to its end (the response closed). */
  track(server: RequestEmitter): void;
  stop(): void;
  /** Quiet spells collected so far (tests). */
  readonly runs: number;
  /** Full collections done so far, two per quiet spell that stays quiet (tests). */
  readonly collections: number;
}

/**
 * Starts watching: the first collection comes once start-up is over and nothing has happened
 * for `quietMs`, later ones after each period of activity followed by `quietMs` of quiet.
 */
export function idleGc(options: { quietMs?: number; checkMs?: number; settleMs?: number } = {}): IdleGc {
  const quietMs = options.quietMs ?? 2_000;
  const checkMs = options.checkMs ?? 1_000;
  // V8 judges the allocation rate over its collections of the last 5 s: the second collection
  // sees a low one only when the quiet before it is that long.
  const settleMs = options.settleMs ?? 6_000;
  const gc = compactingGc(fullGc());
  let inFlight = 0;
  let lastActivity = Date.now();
  let runs = 0;
  let collections = 0;
  // The quiet spell already had its first collection; the second comes `settleMs` after it.
  let firstDone = false;
  let firstAt = 0;
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    if (inFlight > 0 || Date.now() - lastActivity < quietMs) return;
    if (firstDone && Date.now() - firstAt < settleMs) return;
    gc();
    firstAt = Date.now();
    collections += 1;
    if (!firstDone) {
      firstDone = true;
      runs += 1;
      return;
    }
    firstDone = false;
    clearInterval(timer);
    timer = undefined;
  };
  // Armed only while there is something to collect: an idle process wakes for nothing.
  const arm = () => {
    if (timer) return;
    timer = setInterval(check, checkMs);
    timer.unref();
  };
  arm();
  return {
    track(server) {
      server.on('request', (_req, res) => {
        inFlight += 1;
        lastActivity = Date.now();
        firstDone = false;
        arm();
        res.once('close', () => {
          inFlight -= 1;
          lastActivity = Date.now();
        });
      });
    },
    stop() {
      clearInterval(timer);
      timer = undefined;
    },
    get runs() {
      return runs;
    },
    get collections() {
      return collections;
    },
  };
}
