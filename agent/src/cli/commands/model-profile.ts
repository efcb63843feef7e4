import path from 'node:path';
import { PACKAGE_ROOT } from '../../core/package-root.js';
import { profileModel } from '../../evaluation/profile-model.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';

/** `forewarn model profile`: the training-data profile in a model's manifest, the reference for drift detection. */

export const modelProfile: CliCommand = {
  name: 'model profile',
  synopsis: 'forewarn model profile NAME --data TRAIN [--write]',
  summary: "summarise a model's training data per input into its manifest: the reference for drift detection",
  usage: `forewarn model profile NAME --data TRAIN [--exclude HOLDOUT.txt] [--write] [--json] [--models-dir DIR]

Summarises the training data of the model NAME per input (histogram bins, missing values) into its manifest:
the reference that drift detection compares live inputs with. A dry run unless --write.

  --data FILE         the training data
  --exclude FILE      rows to leave out (the held-out split)
  --write             store the profile in the model's manifest.json
  --models-dir DIR    where the model folders are (default: the shipped models/)
  --json              print JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      this,
      argv,
      {
        json: { type: 'boolean', default: false },
        data: { type: 'string' },
        exclude: { type: 'string' },
        write: { type: 'boolean', default: false },
        'models-dir': { type: 'string' },
      },
      1,
    );
    const [name] = positionals;
    if (!name || !values.data) usageError(this, 'expected `model profile NAME --data TRAIN [--exclude FILE] [--write]`');
    const modelsDir = values['models-dir'] ?? path.join(PACKAGE_ROOT, 'models');
    const r = profileModel(path.join(modelsDir, name), values.data, { ...(values.exclude ? { exclude: values.exclude } : {}), write: values.write });
    process.stdout.write(
      values.json
        ? `${JSON.stringify(r, null, 2)}\n`
        : `${r.model}@${r.version}: ${r.rows} training rows profiled from ${r.data}${r.skipped ? ` (${r.skipped} unreadable rows skipped)` : ''}\n${r.features.map((f) => `  ${f.name}: ${f.bins} bins${f.missing ? `, ${(f.missing * 100).toFixed(1)}% missing` : ''}`).join('\n')}\n${r.written ? `wrote ${r.written}` : 'dry run: add --write to store it in the manifest'}\n`,
    );
    return 0;
  },
};
