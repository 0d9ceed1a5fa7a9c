// The CLI's argument helpers: parseArgs mistakes as one plain line, --url as a URL or HOST:PORT,
// and which program a credential helper's shell command runs (checked at start-up).
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../../src/cli/args.js';
import { baseUrl } from '../../src/cli/client.js';
import { helperProgram } from '../../src/config/files.js';

const options = { url: { type: 'string', short: 'u' }, json: { type: 'boolean' } } as const;

describe('parseArgs', () => {
  it.each([
    [['--nope'], 'unknown option --nope'],
    [['-z'], 'unknown option -z'],
    [['--url'], 'option --url needs a value'],
    [['-u'], 'option --url needs a value'],
    [['--url', '--json'], 'option --url needs a value'],
    [['--json=1'], 'option --json takes no value'],
  ])('%j → %s', (args, message) => {
    let thrown: unknown;
    try {
      parseArgs({ args, options, strict: true });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UsageError);
    expect((thrown as UsageError).message).toBe(message);
    expect((thrown as UsageError).showHelp).toBe(true);
  });

  it('a positional where none is taken', () => {
    expect(() => parseArgs({ args: ['x'], options, strict: true })).toThrow(new UsageError('unexpected argument "x"', true));
  });

  it('passes good arguments through', () => {
    expect(parseArgs({ args: ['--url', 'h:1', '--json', 'a'], options, strict: true, allowPositionals: true })).toEqual({ values: { url: 'h:1', json: true }, positionals: ['a'] });
  });
});

describe('--url', () => {
  it.each([
    ['127.0.0.1:5000', 'http://127.0.0.1:5000/'],
    ['localhost:5000', 'http://localhost:5000/'],
    ['[::1]:5000', 'http://[::1]:5000/'],
    ['registry.example:443', 'https://registry.example/'],
    ['registry.example', 'https://registry.example/'],
    ['http://registry.example:5000', 'http://registry.example:5000/'],
    ['HTTPS://r.example/', 'https://r.example/'],
  ])('%s → %s', (raw, want) => {
    expect(baseUrl(raw).href).toBe(want);
  });

  it.each(['ftp://x', 'http://[bad', 'file:///etc/passwd'])('%s is refused', (raw) => {
    expect(() => baseUrl(raw)).toThrow(UsageError);
  });
});

describe('credential helper program', () => {
  it.each([
    ['echo AWS:$(aws ecr get-login-password)', 'echo'],
    ['/usr/local/bin/helper --region x', '/usr/local/bin/helper'],
    ['AWS_REGION=eu-west-1 AWS_PROFILE=x aws-helper get', 'aws-helper'],
    ['  gcloud auth print-access-token  ', 'gcloud'],
    ['$(which helper)', undefined],
    ['"quoted helper" x', undefined],
    ['', undefined],
  ])('%s → %s', (command, want) => {
    expect(helperProgram(command)).toBe(want);
  });
});
