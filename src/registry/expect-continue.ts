// `Expect: 100-continue`: the client sends its headers and waits for our word before sending the
// body. node says "100 Continue" as soon as the headers are in, before the request is even
// checked; Go's net/http, which Docker Distribution runs on, says it only when the handler starts
// reading the body. Done the same way here, a request refused before its body is read (401 for
// missing credentials, 413 for an oversize manifest, 404 for an unknown session) is answered
// without the client having been told to send megabytes nobody will read.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** Makes `server` send 100 Continue on the first read of a request's body, not on arrival. */
export function continueOnFirstRead(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    // _read is where a Readable asks its source for data: in flowing mode, in paused mode and
    // through a pipe alike, so it is the one place that sees "the handler wants the body".
    const read = req._read;
    let told = false;
    req._read = function (this: IncomingMessage, size: number): void {
      if (!told) {
        told = true;
        if (!res.headersSent && !res.writableEnded) res.writeContinue();
      }
      read.call(this, size);
    };
    // With a checkContinue listener, node leaves the request to us: hand it to the usual handler.
    server.emit('request', req, res);
  });
}
