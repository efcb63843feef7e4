import { commandHelp, generalHelp } from '../help.js';
import { noExtraArguments, usageError, type CliCommand } from '../command.js';

/** `forewarn help [COMMAND]`. */

export const help: CliCommand = {
  name: 'help',
  synopsis: 'forewarn help [COMMAND]',
  summary: 'this list, or the usage of one command (also `--help`, `-h`)',
  usage: 'forewarn help [COMMAND]\n\nPrints the list of commands, or the usage of COMMAND (e.g. `forewarn help model install`).',
  async run(argv, ctx) {
    if (argv.length === 0) {
      process.stdout.write(`${generalHelp(ctx.commands)}\n`);
      return 0;
    }
    const command = ctx.commands.find((c) => c.name === argv.slice(0, 2).join(' ')) ?? ctx.commands.find((c) => c.name === argv[0]);
    if (!command) usageError(this, `unknown command: ${argv.join(' ')}`);
    noExtraArguments(this, argv, command.name.split(' ').length);
    process.stdout.write(`${commandHelp(command, ctx.commands)}\n`);
    return 0;
  },
};
