// Validates a parsed YAML document against the schema and fills in the defaults.
import { schemaProblems } from './schema-check.js';
import type { RawConfig } from './schema.js';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { asRawConfig, resolveValues, type ResolveOptions } from './resolve-values.js';

export { ConfigError };

export function resolveConfig(input: unknown, options: ResolveOptions = {}): Config {
  const raw = asRawConfig(input, options.source);
  return resolveValues(raw, schemaProblems(raw), options);
}

export function defaultConfig(overrides: RawConfig = {}, baseDir?: string): Config {
  return resolveConfig(overrides, { baseDir });
}
