import { BreakwaterError } from '../errors.js';

/**
 * A configuration problem, reported with the file (or "command-line flags") and the key path, so
 * an operator can fix it without reading code: `config error in /etc/breakwater.yaml:
 * mqtt.maxPacketSize must be an integer between 1 and 268435455 (got "big")`.
 */
export class ConfigError extends BreakwaterError {
  /** Where the configuration came from: a file path or `command-line flags`. */
  readonly source: string;
  /** One line per problem, each starting with the key path. */
  readonly problems: readonly string[];

  constructor(
    code: 'BW_ERR_CONFIG_INVALID' | 'BW_ERR_CONFIG_FILE',
    source: string,
    problems: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(code, problems.join('; '), options);
    this.name = 'ConfigError';
    this.source = source;
    this.problems = problems;
    // The catalog prefix ("invalid configuration: …") adds nothing here; the source matters more.
    this.message =
      problems.length === 1
        ? `config error in ${source}: ${problems[0]}`
        : `config error in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
  }
}
