// Parses combined-format access log lines (`"GET /v2/x HTTP/1.1" 200 123`) into request records.

export interface LoggedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  query: string;
  status: number;
  bytes: number;
}

const LINE = /"([A-Z]+) ([^ "]+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

export function parseAccessLog(text: string): LoggedRequest[] {
  const out: LoggedRequest[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, method, target, status, bytes] = m as unknown as [string, string, string, string, string];
    const q = target.indexOf('?');
    out.push({
      method,
      path: q < 0 ? target : target.slice(0, q),
      query: q < 0 ? '' : target.slice(q + 1),
      status: Number(status),
      bytes: bytes === '-' ? 0 : Number(bytes),
    });
  }
  return out;
}
