// Reads the YAML file named by --config or LAYOVER_CONFIG (or none: the embedded defaults).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import type { Config } from './config.js';
import { ConfigError, resolveConfig } from './resolve.js';

export async function loadConfig(file: string | undefined, warn?: (msg: string) => void): Promise<Config> {
  if (!file) return resolveConfig({}, { warn });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], file);
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError([`not valid YAML: ${(err as Error).message.split('\n')[0]}`], file);
  }
  return resolveConfig(doc, { source: file, baseDir: path.dirname(path.resolve(file)), warn });
}
