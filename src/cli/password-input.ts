// Reading a password for `layover user` and `layover login`: from stdin when asked to
// (scripts, CI), else from the terminal without echo.
import { text } from 'node:stream/consumers';
import { UsageError } from './args.js';

export async function passwordFromStdin(): Promise<string> {
  const value = (await text(process.stdin)).replace(/\r?\n$/, '');
  if (!value) throw new UsageError('no password on stdin');
  return value;
}

/** What was typed after the Enter that ended the previous prompt (a paste of two lines). */
let typedAhead = '';

export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (let i = 0; i < chunk.length; i++) {
        const ch = chunk[i] as string;
        if (ch === '\r' || ch === '\n') {
          typedAhead = chunk.slice(chunk[i + 1] === '\n' && ch === '\r' ? i + 2 : i + 1);
          return done();
        }
        if (ch === '\u0003') return done(new UsageError('cancelled'));
        if (ch === '\u0004') return done(new UsageError('no password given'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
    if (typedAhead) {
      const ahead = typedAhead;
      typedAhead = '';
      onData(ahead);
    }
  });
}

/** From stdin with --password-stdin, else typed twice on a terminal; undefined when neither is possible. */
export async function readNewPassword(fromStdin: boolean): Promise<string | undefined> {
  if (fromStdin) return passwordFromStdin();
  if (!process.stdin.isTTY) return undefined;
  const first = await promptHidden('Password: ');
  if (!first) throw new UsageError('empty password');
  const second = await promptHidden('Again: ');
  if (first !== second) throw new UsageError('the passwords differ');
  return first;
}

export async function readPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return passwordFromStdin();
  if (!process.stdin.isTTY) throw new UsageError('no terminal to ask for the password: use --password-stdin');
  return promptHidden('Password: ');
}
