import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type PinoPrettyModule from 'pino-pretty';

export type { Logger };

/** Keys whose values never reach a log line, wherever they appear. */
export const REDACT_PATHS = ['password', '*.password', '*.*.password', 'passphrase', '*.passphrase', 'key', '*.key', 'authorization', '*.authorization'];

export interface LoggerOptions {
  level: string;
  /** Human-readable output (a terminal); JSON lines otherwise, which journald stores as they are. */
  pretty: boolean;
  /** Where pretty lines go; lets the live view keep its panel below the log. Defaults to stdout. */
  prettyOut?: (text: string) => void;
  /** The file descriptor JSON lines go to: stdout (1) unless a command keeps stdout for its own output (2). */
  fd?: 1 | 2;
}

export function createLogger(options: LoggerOptions): Logger {
  const base = {
    level: options.level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { pid: process.pid },
  };
  if (!options.pretty) {
    // Synchronous stdout: a line logged just before exit is never lost (pino#1183).
    return pino(base, pino.destination({ dest: options.fd ?? 1, sync: true }));
  }
  const out = options.prettyOut;
  const destination = out
    ? new Writable({
        write(chunk: Buffer, _enc, cb) {
          out(chunk.toString());
          cb();
        },
      })
    : 1;
  // Loaded only for a terminal: a service logs JSON lines and never pays for the pretty printer (42 modules).
  const PinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPrettyModule;
  return pino(base, PinoPretty({ destination, sync: true, colorize: process.stdout.isTTY === true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss.l' }));
}
