import { assessConfigStorage, redactConfig } from '../../config/load-config.js';
import { ForewarnError } from '../../core/errors.js';
import { alertConfigProblems } from '../../health/alert-lifecycle.js';
import { parseCommandArgs, type CliCommand } from '../command.js';
import { effectiveConfig } from '../effective-config.js';

/** `forewarn config check [FILE]`: validate the configuration `run` would get, without running. */

export const configCheck: CliCommand = {
  name: 'config check',
  synopsis: 'forewarn config check [FILE] [--json]',
  summary: 'validate the configuration (file and FOREWARN_* environment) without running',
  usage: `forewarn config check [FILE] [--json]

Validates the configuration \`forewarn run\` would get: FILE (or --config, FOREWARN_CONFIG, or the defaults)
with the FOREWARN_* environment variables applied, against the schema and this host's disk. Prints
\`FILE: valid\`; exit code 2 with one \`path: message\` line per problem otherwise (a value from the
environment names its variable). \`forewarn config show\` prints every value and where it came from.

  -c, --config FILE   the file to check, when FILE is not given
  --json              print the resulting configuration (secrets redacted) as JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean', default: false } }, 1);
    const loaded = effectiveConfig(positionals[0] ?? values.config);
    const name = loaded.file ?? '(embedded defaults)';
    // Limits this host's disk cannot meet: an explicit one refuses the file, a default one is clamped at run time.
    const storage = assessConfigStorage(loaded);
    const errors = storage.problems.filter((p) => p.severity === 'error').map((p) => `${p.path}: ${p.message}`);
    // Alert rule ids and clear values, checked against the rule catalogue (config itself may not import it).
    errors.push(...alertConfigProblems(loaded.config.alerts));
    if (errors.length) throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${name}: invalid configuration`, { details: errors });
    for (const p of storage.problems) process.stderr.write(`forewarn: ${name}: ${p.severity}: ${p.path}: ${p.message} [FW_ERR_STORAGE_LIMITS]\n`);
    const fromEnv = [...loaded.origins.values()].filter((o) => o.startsWith('FOREWARN_'));
    const note = fromEnv.length ? ` (with ${fromEnv.join(', ')} from the environment)` : '';
    process.stdout.write(values.json ? `${JSON.stringify(redactConfig(loaded.config), null, 2)}\n` : `${name}: valid${note}\n`);
    return 0;
  },
};
