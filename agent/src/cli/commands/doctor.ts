import { parseCommandArgs, type CliCommand } from '../command.js';
import { formatDoctor, runDoctor } from '../doctor.js';

/** `forewarn doctor`: the checks live in cli/doctor.ts; this is the command line around them. */

export const doctor: CliCommand = {
  name: 'doctor',
  synopsis: 'forewarn doctor [--config FILE] [--json]',
  summary: 'check the configuration, broker, tools, permissions, models and disk; exit 1 on a failure',
  usage: `forewarn doctor [--config FILE] [--json]

Checks the configuration, the broker, the tools and permissions the sources need, the models and the disk
(docs/observability.md). Exit code 1 when a check fails; warnings alone exit 0.

  -c, --config FILE   the configuration file (or FOREWARN_CONFIG)
  --json              print JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, json: { type: 'boolean', default: false } }, 0);
    const report = await runDoctor(values.config);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`);
    return report.ok ? 0 : 1;
  },
};
