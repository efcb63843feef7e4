import { mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { assessConfigStorage, buildConfig, loadConfig, scalarOptions } from '../../../agent/src/config/load-config.js';
import { ForewarnError, isForewarnError } from '../../../agent/src/core/errors.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';

/** Configurations that must be refused with `path: message`, not crash, hang or slip through. */

const cleanup = cleanupAfterEach();

function refusal(fn: () => unknown): ForewarnError {
  try {
    fn();
  } catch (err) {
    if (isForewarnError(err)) return err;
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-safety-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const procIsProc = (() => {
  try {
    return statfsSync('/proc').type === 0x9fa0;
  } catch {
    return false;
  }
})();

/** Nine levels of nine aliases: 9^9 strings if expanded. */
const BILLION_LAUGHS = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat([...'bcdefghi'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`))
  .join('\n');

describe('YAML aliases', () => {
  it('refuses an alias bomb as invalid YAML, with the file named, instead of expanding it', () => {
    const err = refusal(() => buildConfig(BILLION_LAUGHS, {}, 'bomb.yaml'));
    expect(err.code).toBe('FW_ERR_CONFIG_READ');
    expect(err.message).toBe('bomb.yaml: not valid YAML');
    expect(err.details).toEqual([
      expect.stringMatching(/^bomb\.yaml: Excessive alias count indicates a resource exhaustion attack.* \(more than 100 alias expansions\)$/),
    ]);
  });

  it('refuses an alias without its anchor, with its line and column', () => {
    const err = refusal(() => buildConfig('agent:\n  logLevel: info\n  id: *nope\n', {}, 'f.yaml'));
    expect(err.code).toBe('FW_ERR_CONFIG_READ');
    expect(err.details).toEqual(['f.yaml: Unresolved alias (the anchor must be set before the alias): nope at line 3, column 7']);
  });

  it('still takes a few ordinary anchors and aliases', () => {
    const cfg = buildConfig(
      'scoring:\n  bindings:\n    - model: machine-failure\n      assets: &mills [mill-1, mill-2]\n    - model: disk-failure\n      assets: *mills\n',
      {},
    );
    expect(cfg.scoring.bindings.map((b) => b.assets)).toEqual([
      ['mill-1', 'mill-2'],
      ['mill-1', 'mill-2'],
    ]);
  });
});

describe('numeric limits', () => {
  it('refuses absurd byte sizes from the file and from the environment', () => {
    expect(refusal(() => buildConfig('storage:\n  maxBytes: 1e29\n', {})).details).toEqual(['storage.maxBytes: must be <= 1125899906842624']);
    expect(refusal(() => buildConfig(null, { FOREWARN_STORAGE_MIN_FREE_BYTES: '1e20' })).details).toEqual([
      'storage.minFreeBytes: must be <= 1125899906842624 (from FOREWARN_STORAGE_MIN_FREE_BYTES)',
    ]);
    expect(buildConfig(`storage:\n  maxBytes: ${2 ** 50}\n`, {}).storage.maxBytes).toBe(2 ** 50);
  });

  it('gives every integer option a maximum; byte sizes at most 2^50, durations within what a Node timer can wait', () => {
    const integers = scalarOptions().filter(({ node }) => node.type === 'integer');
    expect(integers.length).toBeGreaterThan(40);
    for (const { path: p, node } of integers) {
      const name = p.join('.');
      expect(node.maximum, name).toBeTypeOf('number');
      expect(node.maximum!, name).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
      if (/Bytes$/.test(name)) expect(node.maximum!, name).toBeLessThanOrEqual(2 ** 50);
      // setTimeout fires at once for delays above 2^31-1 ms: an interval that large would spin.
      if (/Ms$/.test(name)) expect(node.maximum!, name).toBeLessThan(2 ** 31);
    }
    expect(refusal(() => buildConfig('storage:\n  checkIntervalMs: 3000000000\n', {})).details).toEqual(['storage.checkIntervalMs: must be <= 3600000']);
  });
});

describe('model names', () => {
  it('refuses a binding whose model name is a path', () => {
    for (const bad of ['../../../etc', 'a/b', '..', '.hidden', 'models\\x', 'Machine_Failure']) {
      const err = refusal(() => buildConfig(`scoring:\n  bindings:\n    - model: ${JSON.stringify(bad)}\n      assets: [x]\n`, {}));
      expect(err.code, bad).toBe('FW_ERR_CONFIG_INVALID');
      expect(err.details, bad).toEqual([expect.stringMatching(/^scoring\.bindings\.0\.model: Model name: .*never a path \(must match /)]);
    }
    expect(buildConfig('scoring:\n  bindings:\n    - model: turbofan-rul\n      assets: [engine-*]\n', {}).scoring.bindings[0]!.model).toBe('turbofan-rul');
  });
});

describe('trusted keys', () => {
  it('refuses a commands.trustedKeys or scoring.trustedKeys entry that does not exist', () => {
    const dir = tempDir();
    const key = path.join(dir, 'centre.pub.pem');
    writeFileSync(key, '-----BEGIN PUBLIC KEY-----\n');
    const missing = path.join(dir, 'gone.pub.pem');
    const err = refusal(() =>
      buildConfig(`commands:\n  trustedKeys: [${missing}, ${key}]\nscoring:\n  trustedKeys: [${dir}, ${path.join(dir, 'keys.d')}]\n`, {}),
    );
    expect(err.code).toBe('FW_ERR_CONFIG_INVALID');
    expect(err.details).toEqual([`scoring.trustedKeys[1]: ${path.join(dir, 'keys.d')} does not exist`, `commands.trustedKeys[0]: ${missing} does not exist`]);
    // A file and a directory that exist are what the option takes.
    const cfg = buildConfig(`commands:\n  trustedKeys: [${key}]\nscoring:\n  trustedKeys: [${dir}]\n`, {});
    expect(cfg.commands.trustedKeys).toEqual([key]);
  });

  it('checks entries given by the environment too', () => {
    expect(refusal(() => buildConfig(null, { FOREWARN_COMMANDS_TRUSTED_KEYS: '["/nonexistent/centre.pub.pem"]' })).details).toEqual([
      'commands.trustedKeys[0]: /nonexistent/centre.pub.pem does not exist',
    ]);
  });
});

describe('storage.dir', () => {
  it.skipIf(!procIsProc)('refuses a directory under /proc or /sys (SQLite cannot work there; creating it under /proc never returns)', () => {
    for (const [dir, fs] of [
      ['/proc/forewarn-test', 'proc'],
      ['/sys/forewarn-test', 'sysfs'],
      ['/proc', 'proc'],
    ] as const) {
      const err = refusal(() => buildConfig(`storage:\n  dir: ${dir}\n`, {}));
      expect(err.code).toBe('FW_ERR_CONFIG_INVALID');
      expect(err.details).toEqual([expect.stringMatching(new RegExp(`^storage\\.dir: ${dir} is on ${fs}, a virtual file system`))]);
    }
    expect(refusal(() => buildConfig(null, { FOREWARN_STORAGE_DIR: '/proc/self/forewarn' })).details[0]).toMatch(/^storage\.dir: .* is on proc/);
  });

  it('refuses a directory whose nearest existing ancestor is a file', () => {
    const file = path.join(tempDir(), 'afile');
    writeFileSync(file, '');
    expect(refusal(() => buildConfig(`storage:\n  dir: ${file}/data\n`, {})).details).toEqual([
      `storage.dir: ${file} is not a directory, so ${file}/data cannot be created`,
    ]);
  });
});

describe('storage limits in the loaded configuration', () => {
  it('records which options the file and the environment set, for clamping defaults only', () => {
    const dir = tempDir();
    const file = path.join(dir, 'forewarn.yaml');
    writeFileSync(file, `storage:\n  dir: ${dir}/data\n  minFreeBytes: 1048576\n`);
    const loaded = loadConfig(file, { FOREWARN_BROKER_KEEPALIVE_SECONDS: '40' });
    expect(loaded.explicit.has('storage.minFreeBytes')).toBe(true);
    expect(loaded.explicit.has('broker.keepaliveSeconds')).toBe(true);
    expect(loaded.explicit.has('storage.maxBytes')).toBe(false);
    // The same numbers judged differently: an explicit floor too large is an error, a default one is clamped.
    const explicit = assessConfigStorage(
      { ...loaded, config: { ...loaded.config, storage: { ...loaded.config.storage, minFreeBytes: 48 * 2 ** 20 } } },
      { fsBytes: 64 * 2 ** 20 },
    );
    expect(explicit.problems.map((p) => `${p.path} ${p.severity}`)).toEqual(['storage.minFreeBytes error', 'storage.maxBytes warning']);
    const defaults = assessConfigStorage(loadConfig(undefined, {}), { fsBytes: 64 * 2 ** 20 });
    expect(defaults.problems.map((p) => `${p.path} ${p.severity}`)).toEqual(['storage.minFreeBytes clamped', 'storage.maxBytes warning']);
  });
});
