// Shared argument handling for the `layover` subcommands.
import { parseArgs as nodeParseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(
    message: string,
    /** Point at the command's --help (the mistake is in the arguments, not in what they name). */
    readonly showHelp = false,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The flag an error of parseArgs is about: `--url` from "Option '-u, --url <value>' argument missing". */
function flagIn(message: string): string {
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? '';
  return /--?[\w-]+(?=[^,]*$)/.exec(quoted.replace(/ <value>$/, ''))?.[0] ?? quoted;
}

/**
 * node:util's parseArgs, strict, whose mistakes come out as one plain line (a UsageError: exit 2)
 * rather than Node's wording and error codes.
 */
export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  try {
    return nodeParseArgs(config);
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    switch (code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw new UsageError(`unknown option ${flagIn(message)}`, true);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
        throw new UsageError(/does not take an argument/.test(message) ? `option ${flagIn(message)} takes no value` : `option ${flagIn(message)} needs a value`, true);
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
        throw new UsageError(`unexpected argument "${/'([^']*)'/.exec(message)?.[1] ?? ''}"`, true);
      default:
        throw err;
    }
  }
}
