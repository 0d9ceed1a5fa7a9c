// Decodes a chunked response body (RFC 9112 §7.1) as its bytes arrive in arbitrary pieces. The
// registry answers chunked only for small generated bodies, so the data is copied out of the
// read slab; large blob bodies have a Content-Length and never come through here.

export class ChunkedBodyError extends Error {}

const MAX_LINE = 4096;

type State = 'size' | 'data' | 'data-crlf' | 'trailer' | 'done';

export class ChunkedDecoder {
  private state: State = 'size';
  private line = '';
  private remaining = 0;

  get done(): boolean {
    return this.state === 'done';
  }

  /** Feeds bytes; returns the decoded data in them and how many bytes were used (the rest follow the body). */
  push(bytes: Buffer): { data: Buffer[]; used: number } {
    const data: Buffer[] = [];
    let at = 0;
    while (at < bytes.length && this.state !== 'done') {
      if (this.state === 'data') {
        const take = Math.min(this.remaining, bytes.length - at);
        data.push(Buffer.from(bytes.subarray(at, at + take)));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'data-crlf';
        continue;
      }
      // Line-oriented states: collect up to LF.
      const lf = bytes.indexOf(0x0a, at);
      const end = lf < 0 ? bytes.length : lf;
      this.line += bytes.toString('latin1', at, end);
      if (this.line.length > MAX_LINE) throw new ChunkedBodyError('chunk line too long');
      at = lf < 0 ? bytes.length : lf + 1;
      if (lf < 0) break;
      if (!this.line.endsWith('\r')) throw new ChunkedBodyError('bare LF in chunked body');
      const line = this.line.slice(0, -1);
      this.line = '';
      if (this.state === 'data-crlf') {
        if (line !== '') throw new ChunkedBodyError('chunk data longer than its size');
        this.state = 'size';
      } else if (this.state === 'size') {
        const match = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(line);
        if (!match) throw new ChunkedBodyError('malformed chunk size');
        this.remaining = parseInt(match[1] as string, 16);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
      } else if (this.state === 'trailer') {
        // Trailer fields are dropped (nothing here uses them); the empty line ends the body.
        if (line === '') this.state = 'done';
      }
    }
    return { data, used: at };
  }
}
