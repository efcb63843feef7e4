import { assessConfigStorage, loadConfig, redactConfig } from '../../config/load-config.js';
import { ForewarnError } from '../../core/errors.js';
import { alertConfigProblems } from '../../health/alert-lifecycle.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';

/** `forewarn config check FILE`: validate a configuration without running. */

export const configCheck: CliCommand = {
  name: 'config check',
  synopsis: 'forewarn config check FILE [--json]',
  summary: 'validate a configuration file without running',
  usage: `forewarn config check FILE [--json]

Validates FILE against the schema and this host's disk, without the environment overrides, and prints
\`FILE: valid\`; exit code 2 with one \`path: message\` line per problem otherwise.

  -c, --config FILE   the file to check, when FILE is not given
  --json              print the resulting configuration (secrets redacted) as JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean', default: false } }, 1);
    const file = positionals[0] ?? values.config;
    if (!file) usageError(this, 'config check needs a FILE');
    const loaded = loadConfig(file, {});
    // Limits this host's disk cannot meet: an explicit one refuses the file, a default one is clamped at run time.
    const storage = assessConfigStorage(loaded);
    const errors = storage.problems.filter((p) => p.severity === 'error').map((p) => `${p.path}: ${p.message}`);
    // Alert rule ids and clear values, checked against the rule catalogue (config itself may not import it).
    errors.push(...alertConfigProblems(loaded.config.alerts));
    if (errors.length) throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${file}: invalid configuration`, { details: errors });
    for (const p of storage.problems) process.stderr.write(`forewarn: ${file}: ${p.severity}: ${p.path}: ${p.message} [FW_ERR_STORAGE_LIMITS]\n`);
    process.stdout.write(values.json ? `${JSON.stringify(redactConfig(loaded.config), null, 2)}\n` : `${file}: valid\n`);
    return 0;
  },
};
