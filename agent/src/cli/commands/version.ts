import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../core/package-root.js';
import { noExtraArguments, type CliCommand } from '../command.js';

/** `forewarn version`. */

export const AGENT_VERSION: string = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export const version: CliCommand = {
  name: 'version',
  synopsis: 'forewarn version',
  summary: 'print the agent version (also `--version`, `-v`)',
  usage: 'forewarn version\n\nPrints the version of this agent and exits.',
  async run(argv) {
    noExtraArguments(this, argv, 0);
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  },
};
