import { loadConfig } from '../../config/load-config.js';
import { ModelRegistry, type ModelState } from '../../model-lifecycle/model-registry.js';
import { parseCommandArgs, type CliCommand } from '../command.js';
import { time } from '../model-notes.js';

/** `forewarn model list` (docs/model-updates.md). */

export const modelList: CliCommand = {
  name: 'model list',
  synopsis: 'forewarn model list [--config FILE] [--json]',
  summary: 'shipped and installed versions, current, candidate, history',
  usage: `forewarn model list [--config FILE] [--json]

Per model: the shipped version, the installed ones (current, candidate, kept for rollback), the one in use, the
assets it scores on this agent and its recent history.

  -c, --config FILE   the agent's configuration file (or FOREWARN_CONFIG)
  --json              print JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean', default: false } }, 0);
    const write = (text: string) => process.stdout.write(`${text}\n`);
    const { config } = loadConfig(values.config);
    const registry = ModelRegistry.forConfig(config);
    const names = [...new Set([...registry.shippedNames(), ...registry.names()])].sort();
    const models = names.map((name) => {
      const state: ModelState = registry.read(name);
      return {
        name,
        shipped: registry.shippedDir(name) ? { version: registry.shippedVersion(name), dir: registry.shippedDir(name) } : null,
        inUse: registry.currentVersion(name, state),
        current: state.current,
        candidate: state.candidate,
        previous: state.previous,
        installed: state.versions.map((v) => ({ ...v, dir: registry.versionDir(name, v.version) })),
        history: state.history,
        bound: config.scoring.bindings.filter((b) => b.model === name).flatMap((b) => b.assets),
      };
    });
    if (values.json) {
      write(JSON.stringify({ registry: registry.root, models }, null, 2));
      return 0;
    }
    write(`registry  ${registry.root}`);
    for (const m of models) {
      write('');
      write(`${m.name}${m.bound.length ? `  (scores ${m.bound.join(', ')})` : '  (not bound on this agent)'}`);
      write(`  in use     ${m.inUse ?? 'none'}${m.current ? ' (installed)' : m.shipped ? ' (shipped)' : ''}`);
      if (m.shipped) write(`  shipped    ${m.shipped.version ?? '?'}`);
      for (const v of m.installed) {
        const tag = v.version === m.current ? 'current' : v.version === m.candidate ? 'candidate' : 'kept for rollback';
        write(`  installed  ${v.version.padEnd(10)} ${tag.padEnd(26)} ${time(v.installedAt)}  key ${v.keyId}`);
      }
      for (const h of m.history.slice(-5)) {
        const what =
          h.action === 'candidate'
            ? `candidate ${h.version} installed`
            : h.action === 'promoted'
              ? `promoted ${h.version} (was ${h.other ?? 'none'})`
              : `rolled back ${h.version} → ${h.other ?? 'none'} [${h.stage}]`;
        write(`  ${time(h.ts)}  ${what}${h.reason ? `: ${h.reason}` : ''}`);
      }
    }
    return 0;
  },
};
