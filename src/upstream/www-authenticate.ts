/**
 * @module `WWW-Authenticate` challenges (RFC 7235): parses the schemes and parameters a registry
 * asks for, and formats our own (values quoted and escaped, so any realm survives the trip).
 */

export interface Challenge {
  /** Lower-cased scheme: 'bearer', 'basic', ... */
  scheme: string;
  /** Lower-cased parameter names; quoted values unescaped. */
  params: Record<string, string>;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/**
 * Parses one or more challenges, possibly several in one header value
 * (`Basic realm="r", Bearer realm="https://auth",service="s"`). Malformed input yields what could be read.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  return values.flatMap(parseOne);
}

function parseOne(input: string): Challenge[] {
  const challenges: Challenge[] = [];
  let rest = input;
  let current: Challenge | undefined;
  for (;;) {
    rest = rest.replace(/^[\s,]+/, '');
    if (rest === '') break;
    const name = TOKEN.exec(rest)?.[0];
    if (!name) break;
    const after = rest.slice(name.length).replace(/^\s*/, '');
    if (current && after.startsWith('=')) {
      // auth-param: name = token / quoted-string
      const [value, remaining] = readValue(after.slice(1).replace(/^\s*/, ''));
      current.params[name.toLowerCase()] = value;
      rest = remaining;
      continue;
    }
    // a new challenge: scheme [ token68 / #auth-param ]
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    rest = after;
    // Only a comma or the end may follow a token68 (`abc==, Basic ...`); an auth-param has a value
    // after its '=', so `abc=` is never one.
    const token68 = /^[A-Za-z0-9._~+/-]+=*(?=\s*(,|$))/.exec(rest);
    if (token68) {
      current.params.token68 = token68[0];
      rest = rest.slice(token68[0].length);
    }
  }
  return challenges;
}

function readValue(input: string): [string, string] {
  if (!input.startsWith('"')) {
    const token = /^[^\s,]*/.exec(input)![0];
    return [token, input.slice(token.length)];
  }
  let value = '';
  for (let i = 1; i < input.length; i++) {
    const ch = input[i]!;
    if (ch === '\\' && i + 1 < input.length) {
      value += input[++i];
    } else if (ch === '"') {
      return [value, input.slice(i + 1)];
    } else {
      value += ch;
    }
  }
  return [value, ''];
}

/**
 * One challenge as a header value: `Basic realm="r"`, parameters as quoted strings (`\` and `"`
 * escaped), or the token68 alone. Values must not hold control characters; no header can.
 */
export function formatChallenge(scheme: string, params: Record<string, string>): string {
  if (params.token68 !== undefined) return `${scheme} ${params.token68}`;
  const pairs = Object.entries(params).map(([name, value]) => `${name}="${value.replace(/[\\"]/g, '\\$&')}"`);
  return pairs.length === 0 ? scheme : `${scheme} ${pairs.join(', ')}`;
}
