// Reads the YAML file named by --config or LAYOVER_CONFIG (or none: the embedded defaults).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { asRawConfig, resolveValues, type ResolveOptions } from './resolve-values.js';

/** How the document is checked against the schema; default: in this process (schema-check.ts). */
export type SchemaCheck = (raw: unknown) => Promise<string[]>;

const inProcess: SchemaCheck = async (raw) => (await import('./schema-check.js')).schemaProblems(raw);

async function resolveChecked(input: unknown, check: SchemaCheck, options: ResolveOptions): Promise<Config> {
  const raw = asRawConfig(input, options.source);
  return resolveValues(raw, await check(raw), options);
}

export async function loadConfig(file: string | undefined, warn?: (msg: string) => void, check: SchemaCheck = inProcess): Promise<Config> {
  if (!file) return resolveChecked({}, check, { warn });
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
  return resolveChecked(doc, check, { source: file, baseDir: path.dirname(path.resolve(file)), warn });
}
