import { createLogger } from '../../core/logger.js';
import { CENTRAL_USAGE, runCentralCommand } from '../../central/central-command.js';
import type { CliCommand } from '../command.js';

/** `forewarn central`: the central service parses its own options and handles its own signals. */

export const central: CliCommand = {
  name: 'central',
  synopsis: 'forewarn central [run|report] [--store URL] [--broker URL] …',
  summary: 'the central service: ingest into SQLite or PostgreSQL, alerts to Alertmanager and webhooks, the fleet API (docs/central.md)',
  usage: CENTRAL_USAGE,
  run(argv) {
    return runCentralCommand(argv, createLogger({ level: process.env.FOREWARN_LOG_LEVEL ?? 'info', pretty: process.stdout.isTTY === true }));
  },
};
