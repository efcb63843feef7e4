import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../agent/src/cli/commands/index.js';
import { generalHelp, groupOf } from '../../../agent/src/cli/help.js';
import { ERROR_CODES, EXIT_CODES, ForewarnError, exitCodeOf, type ErrorCode } from '../../../agent/src/core/errors.js';
import { ROOT, runCli } from '../../helpers/agent-process.js';

/** The dispatch table of `forewarn` (agent/src/cli/commands/index.ts) and the exit codes (core/errors.ts). */

describe('forewarn dispatch table', () => {
  it('has one entry per name, each with a synopsis, a one-line summary and a usage that starts with it', () => {
    const names = COMMANDS.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    for (const c of COMMANDS) {
      expect(c.synopsis, c.name).toMatch(new RegExp(`^forewarn ${c.name}\\b`));
      expect(c.summary, c.name).not.toContain('\n');
      expect(c.usage, c.name).toContain(`forewarn ${c.name}`);
    }
  });

  it('the general help lists every entry of the table', async () => {
    const help = generalHelp(COMMANDS);
    for (const c of COMMANDS) expect(help, c.name).toContain(`  ${c.synopsis}`);
    // …including one that is added to the table.
    const extra = { name: 'frob', synopsis: 'forewarn frob [--x]', summary: 'frobnicate', usage: 'forewarn frob [--x]', run: async () => 0 };
    expect(generalHelp([...COMMANDS, extra])).toContain('forewarn frob [--x]');
    const cli = await runCli(['--help']);
    expect(cli.code).toBe(0);
    for (const c of COMMANDS) expect(cli.stdout, c.name).toContain(c.synopsis);
    expect((await runCli(['help'])).stdout).toBe(cli.stdout);
  });

  it('`forewarn run --help` prints the usage of run, not the general help, and exits 0', async () => {
    const r = await runCli(['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.startsWith('forewarn run [--config FILE] [--once]\n')).toBe(true);
    expect(r.stdout).toContain('SIGHUP');
    expect(r.stdout).not.toContain('forewarn status');
    expect(r.stdout).not.toContain('forewarn model');
    const status = await runCli(['status', '-h']);
    expect(status.code).toBe(0);
    expect(status.stdout.startsWith('forewarn status')).toBe(true);
    expect((await runCli(['help', 'config', 'check'])).stdout.startsWith('forewarn config check [FILE]')).toBe(true);
  });

  it('every command of the table prints its own usage on --help, not the general help (and so does each group)', async () => {
    const general = generalHelp(COMMANDS);
    const results = await Promise.all(COMMANDS.map((c) => runCli([...c.name.split(' '), '--help'])));
    COMMANDS.forEach((c, i) => {
      const r = results[i]!;
      expect(r.code, c.name).toBe(0);
      expect(r.stderr, c.name).toBe('');
      expect(r.stdout.startsWith(`${c.usage}\n`), c.name).toBe(true);
      expect(r.stdout, c.name).not.toBe(`${general}\n`);
    });
    const groups = [...new Set(COMMANDS.map((c) => groupOf(c.name)).filter((g) => g !== undefined))];
    expect(groups).toEqual(expect.arrayContaining(['config', 'model']));
    for (const g of groups) {
      const r = await runCli([g, '--help']);
      expect(r.code, g).toBe(0);
      for (const c of COMMANDS.filter((x) => groupOf(x.name) === g)) expect(r.stdout, g).toContain(c.synopsis);
      expect(r.stdout, g).not.toContain('forewarn run ');
    }
  }, 60_000);

  it('an unknown subcommand exits 2 and lists the commands', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('unknown command: frobnicate');
    for (const c of COMMANDS) expect(r.stderr, c.name).toContain(c.synopsis);
    const model = await runCli(['model', 'frobnicate']);
    expect(model.code).toBe(2);
    expect(model.stderr).toContain('unknown model command: frobnicate');
    expect(model.stderr).toContain('forewarn model install');
  });

  it('options may come before the command, and no command runs the agent', async () => {
    const r = await runCli(['--config', path.join(ROOT, 'missing.yaml'), 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[FW_ERR_CONFIG_READ]');
    expect((await runCli(['--version'])).stdout).toBe(
      `${(JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`,
    );
  });
});

describe('exit codes', () => {
  it('every error code has an exit status: 2 for usage and configuration, 1 otherwise', () => {
    expect(Object.keys(EXIT_CODES).sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) expect(exitCodeOf(new ForewarnError(code, 'x'))).toBe(EXIT_CODES[code]);
    expect(exitCodeOf(Object.assign(new TypeError('bad'), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' }))).toBe(2);
    expect(exitCodeOf(new Error('boom'))).toBe(1);
    expect(exitCodeOf('boom')).toBe(1);
  });

  it('docs/errors.md lists the codes that exit 2', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/errors.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Exit codes'));
    expect(section.length).toBeLessThan(doc.length);
    const two = (Object.keys(EXIT_CODES) as ErrorCode[]).filter((c) => EXIT_CODES[c] === 2);
    for (const code of two) expect(section, code).toContain(`\`${code}\``);
    const listed = [...section.matchAll(/`(FW_ERR_[A-Z_]+)`/g)].map((m) => m[1]);
    expect(listed.sort()).toEqual([...two].sort());
  });
});
