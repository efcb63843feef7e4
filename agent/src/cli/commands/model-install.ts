import { loadConfig } from '../../config/load-config.js';
import { installModelBundle } from '../../model-lifecycle/install-model.js';
import { loadTrustedKeys } from '../../core/keys.js';
import { ModelRegistry } from '../../model-lifecycle/model-registry.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';
import { agentNote } from '../model-notes.js';

/** `forewarn model install` (docs/model-updates.md). */

export const modelInstall: CliCommand = {
  name: 'model install',
  synopsis: 'forewarn model install BUNDLE [--config FILE]',
  summary: 'verify, check and install a signed bundle as the candidate',
  usage: `forewarn model install BUNDLE [--config FILE] [--allow-downgrade] [--json]

Verifies the bundle's signature against scoring.trustedKeys, loads it, checks its golden outputs and installs it
as the candidate under storage.dir; the running agent shadow-scores it, then promotes it or rolls it back.
A new model (nothing to shadow it against) or scoring.shadow.samples 0 promotes it at once.

  -c, --config FILE     the agent's configuration file (or FOREWARN_CONFIG)
  --allow-downgrade     install a version older than the one in use
  --json                print JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      this,
      argv,
      { config: { type: 'string', short: 'c' }, 'allow-downgrade': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
      1,
    );
    const [file] = positionals;
    if (!file) usageError(this, 'model install needs a BUNDLE file');
    const { config } = loadConfig(values.config);
    const registry = ModelRegistry.forConfig(config);
    const r = await installModelBundle(file, {
      registry,
      trustedKeys: loadTrustedKeys(config.scoring.trustedKeys),
      shadowSamples: config.scoring.shadow.samples,
      threads: config.scoring.threads,
      allowDowngrade: values['allow-downgrade'] === true,
    });
    const write = (text: string) => process.stdout.write(`${text}\n`);
    if (values.json) {
      write(JSON.stringify(r, null, 2));
      return 0;
    }
    const golden = r.golden
      ? `golden outputs match (${r.golden.rows} rows, largest |Δ| ${r.golden.maxAbsDiff} ≤ ${r.golden.tolerance})`
      : 'no golden.json: baseline output checked';
    write(`${r.model}@${r.version}: signature verified (key ${r.keyId}), loads, ${golden}`);
    if (r.superseded) write(`replaces the candidate ${r.superseded}, which had not been promoted`);
    if (r.unchanged) {
      write(`already installed as ${r.outcome === 'candidate' ? 'the candidate' : 'the current version'}: nothing changed`);
    } else if (r.outcome === 'promoted') {
      write(
        `installed and promoted${r.currentVersion === null ? ' (a new model: nothing to shadow it against)' : ' (scoring.shadow.samples is 0)'}; ${agentNote(config, 'loads it')}`,
      );
    } else {
      write(
        `installed as candidate beside ${r.currentVersion}; ${agentNote(config, `shadow-scores it on ${config.scoring.shadow.samples} readings, then promotes it or rolls it back,`)}. \`forewarn model list\` shows the outcome.`,
      );
    }
    return 0;
  },
};
