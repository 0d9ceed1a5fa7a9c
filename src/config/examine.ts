// A configuration file's text made a document and checked against the schema. The two libraries
// this needs, yaml and typebox (~750 modules between them), load here and only here, so that
// `layover serve` can run it in a child process and keep neither (examine-apart.ts).
import { parse } from 'yaml';
import { schemaProblems } from './schema-check.js';
import type { RawConfig } from './schema.js';

/** The document when it is a mapping (its schema problems beside it), or why it is not one. */
export type Examined = { raw: RawConfig; problems: string[] } | { raw?: undefined; problems: [string] };

export function examineConfig(text: string): Examined {
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true });
  } catch (err) {
    return { problems: [`not valid YAML: ${(err as Error).message.split('\n')[0]}`] };
  }
  // An empty file is an empty mapping: the embedded defaults.
  const raw = (doc ?? {}) as RawConfig;
  if (typeof raw !== 'object' || Array.isArray(raw)) return { problems: ['(top level): must be a mapping'] };
  return { raw, problems: schemaProblems(raw) };
}
