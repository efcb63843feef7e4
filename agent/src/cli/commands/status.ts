import { loadConfig } from '../../config/load-config.js';
import { parseCommandArgs, type CliCommand } from '../command.js';
import { formatStatus, probeBroker, readStatus } from '../status-report.js';

/** `forewarn status`: read from the agent's database, with or without a running agent. */

export const status: CliCommand = {
  name: 'status',
  synopsis: 'forewarn status [--config FILE] [--json]',
  summary: 'what is buffered, what was sent, the latest risk per asset',
  usage: `forewarn status [--config FILE] [--json]

Reads the agent's database under storage.dir: whether the agent runs, what is buffered and what was sent, the
latest risk per asset. It also tries a TCP connection to broker.url (at most 2 s) to say whether the broker is
reachable from here, and shows the running agent's own connection state.

  -c, --config FILE   the configuration file (or FOREWARN_CONFIG)
  --json              print JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean', default: false } }, 0);
    const { config } = loadConfig(values.config);
    const report = readStatus(config.storage.dir);
    report.broker = { ...report.broker, url: config.broker.url, ...(await probeBroker(config.broker.url)) };
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
    return 0;
  },
};
