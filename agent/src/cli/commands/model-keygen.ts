import { generateSigningKey } from '../../core/keys.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';

/** `forewarn model keygen` (docs/model-updates.md). */

export const modelKeygen: CliCommand = {
  name: 'model keygen',
  synopsis: 'forewarn model keygen --out DIR [--name NAME]',
  summary: 'a new ed25519 key pair for signing model bundles',
  usage: `forewarn model keygen --out DIR [--name NAME] [--json]

A new ed25519 signing key pair: NAME.key.pem (0600, keep it on the signing host) and NAME.pub.pem (for agents:
list it in scoring.trustedKeys). Never overwrites a key. See docs/model-updates.md.`,
  async run(argv) {
    const { values } = parseCommandArgs(
      this,
      argv,
      { out: { type: 'string', short: 'o' }, name: { type: 'string' }, json: { type: 'boolean', default: false } },
      0,
    );
    if (!values.out) usageError(this, 'model keygen needs --out DIR');
    const k = generateSigningKey(values.out, values.name);
    if (values.json) process.stdout.write(`${JSON.stringify(k, null, 2)}\n`);
    else {
      process.stdout.write(`key id   ${k.keyId}\n`);
      process.stdout.write(`private  ${k.privateFile}  (0600: keep it on the signing host; never copy it to agents)\n`);
      process.stdout.write(`public   ${k.publicFile}  (list it in scoring.trustedKeys on the agents)\n`);
    }
    return 0;
  },
};
