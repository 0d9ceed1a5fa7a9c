// The configuration's error, apart from the loader, so that a command can recognise it without
// loading the schema compiler (the CLI's dispatcher does).
export class ConfigError extends Error {
  constructor(readonly problems: string[], source?: string) {
    super(`invalid configuration${source ? ` in ${source}` : ''}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}
