import { createLogger } from '../../core/logger.js';
import { SUBSCRIBE_USAGE, runSubscribeCommand } from '../../central/subscribe-command.js';
import type { CliCommand } from '../command.js';

/** `forewarn subscribe`: the reference central subscriber parses its own options and handles its own signals. */

export const subscribe: CliCommand = {
  name: 'subscribe',
  synopsis: 'forewarn subscribe [--url URL] [--db FILE] [--report] …',
  summary: 'the ingest of forewarn central alone, on one SQLite file: deduplicates, detects gaps, acknowledges (docs/subscriber.md)',
  usage: SUBSCRIBE_USAGE,
  run(argv) {
    return runSubscribeCommand(argv, createLogger({ level: process.env.FOREWARN_LOG_LEVEL ?? 'info', pretty: process.stdout.isTTY === true }));
  },
};
