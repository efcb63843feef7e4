import { pino, type Logger } from 'pino';

/** A real pino logger whose JSON lines are kept in memory, so tests can assert on what was logged. */
export function captureLogger(level = 'debug'): { log: Logger; lines: Array<Record<string, unknown>>; text: () => string } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}
