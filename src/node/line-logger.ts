// The node role's logger: pino's JSON line shape (level numbers, time, msg), so one log pipeline
// reads every role, without pino itself: pino and its dependencies cost the node role ~7 MiB of
// its 48 MiB budget (test/bench/node.ts) for the handful of lines it writes. It never logs
// headers or bodies; callers pass the method, path and an error code at most.
import { hostname } from 'node:os';

export type NodeLogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

type Fields = Record<string, unknown>;

/** The subset of pino's Logger the node role calls, so pino's loggers fit where this one does. */
export interface NodeLogger {
  debug(fields: Fields, msg: string): void;
  info(fields: Fields, msg: string): void;
  warn(fields: Fields, msg: string): void;
  error(fields: Fields, msg: string): void;
}

const LEVELS: Record<Exclude<NodeLogLevel, 'silent'>, number> = { debug: 20, info: 30, warn: 40, error: 50 };

export function isNodeLogLevel(value: string): value is NodeLogLevel {
  return value === 'silent' || value in LEVELS;
}

export function lineLogger(level: NodeLogLevel, out: NodeJS.WritableStream = process.stdout): NodeLogger {
  const threshold = level === 'silent' ? Infinity : LEVELS[level];
  const base = { pid: process.pid, hostname: hostname() };
  const at = (name: keyof typeof LEVELS) => (fields: Fields, msg: string) => {
    const value = LEVELS[name];
    if (value < threshold) return;
    out.write(`${JSON.stringify({ level: value, time: Date.now(), ...base, ...fields, msg })}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
