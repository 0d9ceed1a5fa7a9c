// Parses a WWW-Authenticate header (RFC 9110 §11.6.1) into its scheme and parameters: what an
// upstream registry asks for (Bearer realm/service/scope, or Basic).
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)/;
const PARAM = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/;

/** Every challenge in the header, in order; malformed parts end the parse. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = [];
  for (const value of [header ?? []].flat()) {
    let rest = value;
    while (rest.trim()) {
      const scheme = TOKEN.exec(rest);
      if (!scheme) break;
      rest = rest.slice(scheme[0].length);
      const challenge: Challenge = { scheme: (scheme[1] as string).toLowerCase(), params: {} };
      for (;;) {
        const param = PARAM.exec(rest);
        // A token followed by something other than '=' starts the next challenge.
        if (!param) break;
        const quoted = param[2];
        challenge.params[(param[1] as string).toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (param[3] as string);
        rest = rest.slice(param[0].length);
      }
      rest = rest.replace(/^\s*,/, '');
      out.push(challenge);
    }
  }
  return out;
}
