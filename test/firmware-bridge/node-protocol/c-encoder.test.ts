/**
 * Builds and runs the C reference encoder's unit tests (firmware-bridge/c) where a C compiler is installed. They
 * also check that the committed test vectors are exactly what the C encoder writes today. The TypeScript side of
 * the vectors (shared-vectors.test.ts) runs everywhere, compiler or not.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const has = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
const toolchain = has('gcc') && has('make');

describe('C reference encoder (firmware-bridge/c)', () => {
  const build = mkdtempSync(path.join(os.tmpdir(), 'forewarn-c-'));
  afterAll(() => rmSync(build, { recursive: true, force: true }));

  it.skipIf(!toolchain)(
    'compiles with gcc -std=c99 -Wall -Wextra -Werror -pedantic and passes its unit tests (skipped when gcc or make is not on PATH)',
    () => {
      const r = spawnSync('make', ['-C', path.join(ROOT, 'firmware-bridge/c'), 'test', `BUILD=${build}`], { encoding: 'utf8', timeout: 120_000 });
      const output = `${r.stdout}\n${r.stderr}`;
      expect(r.status, output).toBe(0);
      expect(output).toMatch(/test_forewarn_node: all \d+ checks passed/);
      expect(output).toMatch(/lib-check: forewarn_node\.o needs only: (memcpy|memmove|memset|memcmp|strlen|\s)+$/m);
    },
  );
});
