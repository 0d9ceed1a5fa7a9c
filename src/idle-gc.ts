// One full garbage collection when a server falls quiet. V8 collects when its heap or external
// memory grows past a limit, not when the process goes idle: after a start-up, an upload or a
// burst of GETs the garbage they left (buffers, the young generation grown to its maximum) stays
// resident until the next burst, 15-35 MiB in a process that holds 40 MiB of its own (issue 16).
// Node sends V8 no idle notifications, so this collects once when no request has been in flight
// for `quietMs` after some activity; under steady traffic it never runs.
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

export interface IdleGc {
  /** Counts a request from its start to its end (the response closed). */
  track(server: RequestEmitter): void;
  stop(): void;
  /** Collections done so far (tests). */
  readonly runs: number;
}

/**
 * Starts watching: the first collection comes once start-up is over and nothing has happened
 * for `quietMs`, later ones after each period of activity followed by `quietMs` of quiet.
 */
export function idleGc(options: { quietMs?: number; checkMs?: number } = {}): IdleGc {
  const quietMs = options.quietMs ?? 2_000;
  const checkMs = options.checkMs ?? 1_000;
  const gc = fullGc();
  let inFlight = 0;
  let lastActivity = Date.now();
  let runs = 0;
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    if (inFlight > 0 || Date.now() - lastActivity < quietMs) return;
    clearInterval(timer);
    timer = undefined;
    gc();
    runs += 1;
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
  };
}
