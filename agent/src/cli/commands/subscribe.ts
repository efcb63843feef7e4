import { createLogger } from '../../core/logger.js';
import { SUBSCRIBE_USAGE, runSubscribeCommand } from '../../central/subscribe-command.js';
import type { CliCommand } from '../command.js';

/** `forewarn subscribe`: the reference central subscriber parses its own options and handles its own signals. */

export const subscribe: CliCommand = {
  name: 'subscribe',
  synopsis: 'forewarn subscribe [--url URL] [--db FILE] [--report] …',
  summary: 'the reference central subscriber: deduplicates, detects gaps, writes SQLite (docs/subscriber.md)',
  usage: SUBSCRIBE_USAGE,
  run(argv) {
    return runSubscribeCommand(argv, createLogger({ level: process.env.FOREWARN_LOG_LEVEL ?? 'info', pretty: process.stdout.isTTY === true }));
  },
};
