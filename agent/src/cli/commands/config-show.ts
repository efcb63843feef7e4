import { redactConfig, scalarOptions, type LoadedConfig } from '../../config/load-config.js';
import { parseCommandArgs, type CliCommand } from '../command.js';
import { effectiveConfig } from '../effective-config.js';

/** `forewarn config show [FILE]`: the effective configuration, each value with where it came from. */

export const configShow: CliCommand = {
  name: 'config show',
  synopsis: 'forewarn config show [FILE] [--json]',
  summary: 'print the effective configuration and where each value came from',
  usage: `forewarn config show [FILE] [--json]

Prints the configuration \`forewarn run\` would get (FILE, or --config, FOREWARN_CONFIG, or the defaults, with
the FOREWARN_* environment applied), one option a line: its value and where it came from (\`default\`, the
file, or the environment variable). Secrets are redacted. An invalid configuration exits 2, as \`config check\`.

  -c, --config FILE   the file, when FILE is not given
  --json              print {"option": {"value": …, "from": …}} as JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean', default: false } }, 1);
    const rows = configRows(effectiveConfig(positionals[0] ?? values.config));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(Object.fromEntries(rows.map((r) => [r.option, { value: r.value, from: r.from }])), null, 2)}\n`);
      return 0;
    }
    // Origins line up in a column, except after a value too long for one (the model bindings).
    const width = Math.min(COLUMN, Math.max(...rows.map((r) => r.option.length + 2 + JSON.stringify(r.value).length)));
    for (const r of rows) {
      const head = `${r.option}: ${JSON.stringify(r.value)}`;
      process.stdout.write(`${head.padEnd(width)}  # ${r.from}\n`);
    }
    return 0;
  },
};

const COLUMN = 60;

export interface ConfigRow {
  /** `storage.maxBytes` */
  option: string;
  /** The value the agent runs with (secrets redacted). */
  value: unknown;
  /** `default`, the file's path, or the environment variable's name. */
  from: string;
}

/** Every scalar option of `loaded`, in schema order. */
export function configRows(loaded: LoadedConfig): ConfigRow[] {
  const config = redactConfig(loaded.config) as unknown as Record<string, unknown>;
  return scalarOptions().map(({ path }) => {
    const option = path.join('.');
    const value = path.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], config);
    let from = loaded.origins.get(option) ?? 'default';
    // The password read from broker.passwordFile: say so rather than `default`.
    if (option === 'broker.password' && from === 'default' && loaded.config.broker.passwordFile)
      from = `broker.passwordFile (${loaded.config.broker.passwordFile})`;
    return { option, value, from };
  });
}
