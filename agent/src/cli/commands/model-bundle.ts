import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadPrivateKey } from '../../core/keys.js';
import { createBundle } from '../../model-lifecycle/model-bundle.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';

/** `forewarn model bundle` (docs/model-updates.md). */

export const modelBundle: CliCommand = {
  name: 'model bundle',
  synopsis: 'forewarn model bundle MODEL_DIR --key PRIVATE.pem --out FILE',
  summary: 'sign a model folder into a single-file bundle',
  usage: `forewarn model bundle MODEL_DIR --key PRIVATE.pem --out FILE [--json]

Signs the model folder MODEL_DIR (manifest.json, the model file, golden.json) into a single-file bundle that
\`forewarn model install\` verifies. See docs/model-updates.md.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      this,
      argv,
      { key: { type: 'string' }, out: { type: 'string', short: 'o' }, json: { type: 'boolean', default: false } },
      1,
    );
    const [dir] = positionals;
    if (!dir) usageError(this, 'model bundle needs a MODEL_DIR');
    if (!values.key) usageError(this, 'model bundle needs --key PRIVATE.pem');
    if (!values.out) usageError(this, 'model bundle needs --out FILE');
    const { bundle, json: text, warnings } = createBundle(dir, loadPrivateKey(values.key));
    writeFileSync(values.out, text, { mode: 0o644 });
    for (const w of warnings) process.stderr.write(`forewarn: warning: ${w}\n`);
    const summary = {
      file: values.out,
      model: bundle.name,
      version: bundle.version,
      keyId: bundle.signature!.keyId,
      files: Object.keys(bundle.files),
      bytes: Buffer.byteLength(text),
      sha256: createHash('sha256').update(text).digest('hex'),
    };
    process.stdout.write(
      values.json
        ? `${JSON.stringify(summary, null, 2)}\n`
        : `${summary.model}@${summary.version} signed with key ${summary.keyId} → ${summary.file} (${summary.files.length} files: ${summary.files.join(', ')}; ${summary.bytes} bytes)\n`,
    );
    return 0;
  },
};
