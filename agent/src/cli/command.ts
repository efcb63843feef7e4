import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ForewarnError } from '../core/errors.js';

/**
 * One subcommand of `forewarn`: an entry of the dispatch table (cli/commands/index.ts). The entry (cli.ts) finds it
 * by its name, prints its usage on `--help`, runs it and turns what it throws into an exit status (core/errors.ts,
 * EXIT_CODES). A handler returns its exit status for outcomes that are not errors (0, or 1 for a failed check).
 */
export interface CliCommand {
  /** The words that select it: `run`, `config check`, `model install`. */
  readonly name: string;
  /** Its arguments in one short line, as the general help lists it: `forewarn run [--config FILE]`. */
  readonly synopsis: string;
  /** One line: what it does. */
  readonly summary: string;
  /** The full usage text that `forewarn NAME --help` prints; starts with the synopsis. */
  readonly usage: string;
  /** Runs it with the arguments after its name. */
  run(argv: string[], ctx: CliContext): Promise<number>;
}

export interface CliContext {
  /** The whole table, for commands that describe the others (`help`). */
  readonly commands: readonly CliCommand[];
}

/** A usage error that carries the command's usage: exit status 2. */
export function usageError(command: Pick<CliCommand, 'usage'>, message: string): never {
  throw new ForewarnError('FW_ERR_USAGE', `${message}\n\n${command.usage}`);
}

/** Refuses positionals beyond the first `max`. */
export function noExtraArguments(command: Pick<CliCommand, 'usage'>, positionals: readonly string[], max: number): void {
  if (positionals.length > max) usageError(command, `unexpected argument: ${positionals[max]}`);
}

/**
 * A command's own options, strictly (an option it does not take is a usage error, exit 2), and at most
 * `maxPositionals` arguments.
 */
export function parseCommandArgs<const O extends NonNullable<ParseArgsConfig['options']>>(
  command: Pick<CliCommand, 'usage'>,
  argv: string[],
  options: O,
  maxPositionals: number,
) {
  const parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  noExtraArguments(command, parsed.positionals, maxPositionals);
  return parsed;
}
