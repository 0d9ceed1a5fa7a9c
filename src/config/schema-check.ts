// The configuration's shape checked against its JSON schema: each bad key or value, by its path.
// typebox loads ~700 modules (~8 MiB resident), so a long-running `layover serve` runs this in
// a child process that exits after (examine-apart.ts); everything else calls it in-process.
import Value from 'typebox/value';
import { ConfigSchema } from './schema.js';

function keyOf(instancePath: string): string {
  return instancePath.replace(/^\//, '').replaceAll('/', '.') || '(top level)';
}

/** The schema's complaints about `raw`, one line each; none when it fits. */
export function schemaProblems(raw: unknown): string[] {
  const problems: string[] = [];
  for (const error of Value.Errors(ConfigSchema, raw)) {
    // additionalProperties yields one error per unknown key (schema false) plus a summary: keep the first.
    if (error.keyword === 'additionalProperties') continue;
    if (error.keyword === 'boolean') problems.push(`${keyOf(error.instancePath)}: unknown key`);
    else if (error.keyword === 'anyOf') continue;
    else problems.push(`${keyOf(error.instancePath)}: ${error.message}`);
  }
  return [...new Set(problems)];
}
