import { USER_USAGE, runUserCommand } from '../../central/console/user-command.js';
import type { CliCommand } from '../command.js';

/** `forewarn central user …`: the console's users; its own entry so that `--help` prints its usage. */

export const centralUser: CliCommand = {
  name: 'central user',
  synopsis: 'forewarn central user add|list|remove|passwd …',
  summary: 'the fleet console’s users and roles, in the central store (docs/console.md, "Users and access")',
  usage: USER_USAGE,
  run(argv) {
    return runUserCommand(argv);
  },
};
