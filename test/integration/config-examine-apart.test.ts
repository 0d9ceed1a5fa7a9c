// The configuration check `layover serve` runs in a child process (config/examine-apart.ts) answers
// exactly what the in-process check does, for good and bad files alike.
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { examineConfig } from '../../src/config/examine.js';
import { compiledEntry } from '../helpers/layover.js';

const TEXTS = [
  '',
  'registry:\n  listen: 127.0.0.1:5999\nupstreams:\n  - { prefix: docker.io, url: https://registry-1.docker.io }\n',
  'registry: { lisen: "127.0.0.1:0", maxManifestSize: [1] }\nwebhook: { enabled: "yes" }\n',
  'registry: [unclosed\n',
  '- a\n- b\n',
  '42\n',
];

describe('the configuration check in a child process', () => {
  it('answers what the check in this process answers', async () => {
    const entry = await compiledEntry();
    const compiled = new URL('../config/examine-apart.js', pathToFileURL(entry)).href;
    const { examineApart } = (await import(compiled)) as typeof import('../../src/config/examine-apart.js');
    for (const text of TEXTS) {
      expect(await examineApart(text)).toEqual(examineConfig(text));
    }
  }, 300_000);
});
