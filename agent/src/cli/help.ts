import type { CliCommand } from './command.js';

/** The help texts, generated from the dispatch table so that every command in it is listed. */

const COLUMN = 51;

function line(synopsis: string, summary: string): string {
  const head = `  ${synopsis}`;
  return head.length < COLUMN - 1 ? `${head.padEnd(COLUMN)}${summary}` : `${head}\n${' '.repeat(COLUMN)}${summary}`;
}

/** The commands' synopses and summaries, one entry each, in table order. */
export function commandList(commands: readonly CliCommand[]): string {
  return commands.map((c) => line(c.synopsis, c.summary)).join('\n');
}

/** `forewarn --help`. */
export function generalHelp(commands: readonly CliCommand[]): string {
  return `forewarn — predictive-maintenance edge agent

Usage:
${commandList(commands)}

\`forewarn COMMAND --help\` prints a command's usage. The configuration file may also be named by FOREWARN_CONFIG;
every option can be set by an environment variable (docs/configuration.md). Exit codes: 0 ok, 1 failure,
2 invalid configuration or usage (docs/errors.md).`;
}

/** The first word of a command made of two (`model` of `model install`), or undefined. */
export function groupOf(name: string): string | undefined {
  const space = name.indexOf(' ');
  return space < 0 ? undefined : name.slice(0, space);
}

/** `forewarn NAME --help`: its usage, then the other commands of its group. */
export function commandHelp(command: CliCommand, commands: readonly CliCommand[]): string {
  const group = groupOf(command.name);
  const others = group === undefined ? [] : commands.filter((c) => c !== command && groupOf(c.name) === group);
  return others.length ? `${command.usage}\n\nOther \`forewarn ${group}\` commands:\n${commandList(others)}` : command.usage;
}
