import { loadConfig } from '../../config/load-config.js';
import { ModelRegistry } from '../../model-lifecycle/model-registry.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';
import { agentNote } from '../model-notes.js';

/** `forewarn model rollback` (docs/model-updates.md). */

export const modelRollback: CliCommand = {
  name: 'model rollback',
  synopsis: 'forewarn model rollback NAME [--config FILE]',
  summary: 'put the previous version of a model back in use',
  usage: `forewarn model rollback NAME [--config FILE] [--reason TEXT] [--json]

Puts the previous version of the model NAME back in use (and discards a candidate); the reason goes into the
model's history.

  -c, --config FILE   the agent's configuration file (or FOREWARN_CONFIG)
  --reason TEXT       why (default: forewarn model rollback)
  --json              print JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      this,
      argv,
      { config: { type: 'string', short: 'c' }, reason: { type: 'string' }, json: { type: 'boolean', default: false } },
      1,
    );
    const [name] = positionals;
    if (!name) usageError(this, 'model rollback needs a model NAME');
    const { config } = loadConfig(values.config);
    const registry = ModelRegistry.forConfig(config);
    const r = registry.rollback(name, 'operator', values.reason ?? 'forewarn model rollback');
    if (values.json) process.stdout.write(`${JSON.stringify({ model: name, ...r }, null, 2)}\n`);
    else {
      process.stdout.write(`${name}: rolled back ${r.from} → ${r.to ?? 'none'}${r.discarded ? ` (the candidate ${r.discarded} was discarded too)` : ''}\n`);
      process.stdout.write(`${agentNote(config, 'switches to it')}\n`);
    }
    return 0;
  },
};
