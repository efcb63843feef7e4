import { COMMAND_SEND_USAGE, runCommandCli } from '../../commands/command-client.js';
import type { CliCommand } from '../command.js';

/** `forewarn command send`: a remote command to an agent over MQTT (docs/commands.md). */

export const commandSend: CliCommand = {
  name: 'command send',
  synopsis: 'forewarn command send AGENT COMMAND [--args JSON] [--key KEY.pem] …',
  summary: 'send a remote command to an agent over MQTT and print its reply (docs/commands.md)',
  usage: COMMAND_SEND_USAGE,
  run(argv) {
    return runCommandCli(['send', ...argv]);
  },
};
