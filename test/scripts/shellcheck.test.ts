import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/** Every shell script of the repository through shellcheck (.ci/run installs it; skipped, saying so, where it is absent). */

const REPO = path.resolve(import.meta.dirname, '../..');
const HAS_SHELLCHECK = spawnSync('sh', ['-c', 'command -v shellcheck']).status === 0;

/** scripts/*.sh, and any other file under scripts/ and .ci/ that starts with a shell's #! line. */
function shellScripts(): string[] {
  const out: string[] = [];
  for (const dir of ['scripts', '.ci']) {
    for (const entry of readdirSync(path.join(REPO, dir), { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      if (entry.name.endsWith('.sh') || /^#!.*\b(ba|da)?sh\b/.test(readFileSync(file, 'utf8').split('\n', 1)[0]!)) out.push(path.relative(REPO, file));
    }
  }
  return out.sort();
}

describe('shell scripts', () => {
  it('are found where expected', () => {
    expect(shellScripts()).toEqual(expect.arrayContaining(['.ci/run', 'scripts/fresh-clone-check.sh', 'scripts/install.sh', 'scripts/uninstall.sh']));
  });

  it.skipIf(!HAS_SHELLCHECK)('pass shellcheck with no finding', () => {
    const r = spawnSync('shellcheck', ['--shell=bash', '--format=gcc', ...shellScripts()], { cwd: REPO, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(!HAS_SHELLCHECK)('would fail on a finding (the check itself works)', () => {
    const r = spawnSync('shellcheck', ['--shell=bash', '-'], { input: 'rm -rf $DIR/*\n', encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toMatch(/SC2115|SC2086/);
  });
});
