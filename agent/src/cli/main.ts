import { ForewarnError, describeError, exitCodeOf, isForewarnError } from '../core/errors.js';
import type { CliCommand, CliContext } from './command.js';
import { commandHelp, commandList, generalHelp, groupOf } from './help.js';
import { AGENT_VERSION } from './commands/version.js';

/**
 * The `forewarn` command line (loaded by the entry, agent/src/cli.ts, once the Node.js version is known to be good): finds the subcommand in the dispatch table (cli/commands/index.ts), prints its usage
 * on `--help`, runs it, and turns what it throws into an exit status through EXIT_CODES (core/errors.ts).
 * No subcommand runs the agent (`forewarn` is `forewarn run`).
 */

export { AGENT_VERSION };

/** Options that take a value, so that the command can follow them: `forewarn --config FILE status`. */
const VALUE_OPTIONS: ReadonlySet<string> = new Set(['--config', '-c', '--data', '--rul', '--threshold', '--models-dir', '--exclude']);

/** The command named by the first one or two words of `argv`, and the arguments without those words. */
export function findCommand(argv: readonly string[], commands: readonly CliCommand[]): { command?: CliCommand; words: string[]; rest: string[] } {
  const at: number[] = [];
  for (let i = 0; i < argv.length && at.length < 2; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a.startsWith('-') && a.length > 1) {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    at.push(i);
  }
  const words = at.map((i) => argv[i]!);
  for (const n of [2, 1]) {
    if (words.length < n) continue;
    const command = commands.find((c) => c.name === words.slice(0, n).join(' '));
    if (command) return { command, words, rest: argv.filter((_, i) => !at.slice(0, n).includes(i)) };
  }
  return { words, rest: [...argv] };
}

function flag(argv: readonly string[], ...names: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => names.includes(a));
}

export async function main(argv: string[], table?: readonly CliCommand[]): Promise<number> {
  const help = flag(argv, '--help', '-h');
  if (!table && !help && !flag(argv, '--version', '-v')) {
    // The daemon (what a service runs) loads only its own modules, not every command's (doctor, evaluation,
    // bundles, the subscriber): less memory for as long as it runs, and a faster start.
    const first = findCommand(argv, [{ name: 'run' } as CliCommand]);
    if (first.command || first.words.length === 0) {
      const { run } = await import('./commands/run.js');
      return run.run(first.rest, { commands: [run] });
    }
  }
  const commands = table ?? (await import('./commands/index.js')).COMMANDS;
  const ctx: CliContext = { commands };
  const { command, words, rest } = findCommand(argv, commands);
  if (command) {
    if (help) {
      process.stdout.write(`${commandHelp(command, commands)}\n`);
      return 0;
    }
    return command.run(rest, ctx);
  }
  if (words.length === 0) {
    if (help) {
      process.stdout.write(`${generalHelp(commands)}\n`);
      return 0;
    }
    if (flag(argv, '--version', '-v')) {
      process.stdout.write(`${AGENT_VERSION}\n`);
      return 0;
    }
    const run = commands.find((c) => c.name === 'run');
    if (run) return run.run(rest, ctx);
  }
  // A group's first word alone (`forewarn model`), or a word that names nothing.
  const group = commands.filter((c) => groupOf(c.name) === words[0]);
  if (group.length) {
    if (help) {
      process.stdout.write(`forewarn ${words[0]} — one of:\n${commandList(group)}\n`);
      return 0;
    }
    throw new ForewarnError('FW_ERR_USAGE', `unknown ${words[0]} command: ${words[1] ?? '(none)'}; one of:\n${commandList(group)}`);
  }
  throw new ForewarnError('FW_ERR_USAGE', `unknown command: ${words[0] ?? '(none)'}\n\n${generalHelp(commands)}`);
}

function fail(err: unknown): number {
  if (isForewarnError(err)) {
    process.stderr.write(`forewarn: ${err.message} [${err.code}]\n`);
    for (const d of err.details) process.stderr.write(`  ${d}\n`);
  } else {
    process.stderr.write(`forewarn: ${describeError(err)}\n`);
  }
  return exitCodeOf(err);
}

/** Runs the command line and sets the exit status: what the entry calls. */
export function runCommandLine(argv: string[]): void {
  // `forewarn config show | head`: a reader that leaves early is not a crash (an unhandled EPIPE would be one).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
  });
  main(argv).then(
    (code) => {
      process.exitCode = code;
      // A daemon that stopped has nothing left to wait for; one-shot commands end on their own.
      if (code !== undefined) setImmediate(() => process.exit(code)).unref();
    },
    (err) => {
      process.exitCode = fail(err);
    },
  );
}
