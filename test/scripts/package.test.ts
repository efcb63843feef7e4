// scripts/package.mjs: the release tarball (docs/install.md).
//
// The pieces — which packages ship (the lockfile's production closure, installed at the lockfile's versions), how
// native packages are pruned to linux-x64, and that the shipped default configuration is valid — and, on linux-x64,
// the whole build (22–41 s on two shared cores: it copies ~75 MB and compresses it), checked the way
// `npm run package` checks it — extracted into a temporary folder and run from there with no access to this
// checkout's node_modules (`forewarn version`, `config check`, a `run` until its model has loaded) — then installed
// into a temporary --root with scripts/install.sh and run from /opt/forewarn/current.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(REPO, 'dist/agent/src/cli.js');

interface PackageModule {
  productionPackages(lock: unknown): Array<[string, string, string, boolean]>;
  keepPackageFile(name: string, rel: string, isDir: boolean): boolean;
  buildPackage(options: {
    outDir?: string;
    version?: string;
    verify?: boolean;
  }): Promise<{ tarball: string; version: string; files: number; bytes: number; packages: number }>;
}
const modulePath = path.join(REPO, 'scripts/package.mjs');
const load = async () => (await import(modulePath)) as PackageModule;

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('package.mjs pieces', () => {
  it('ships the lockfile production packages, installed at the lockfile versions, and no dev packages', async () => {
    const { productionPackages } = await load();
    const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const shipped = productionPackages(lock);
    const keys = new Set(shipped.map(([key]) => key));
    for (const dep of Object.keys(
      (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies,
    )) {
      expect(keys.has(`node_modules/${dep}`), dep).toBe(true);
    }
    for (const dev of ['node_modules/typescript', 'node_modules/vitest', 'node_modules/@types/better-sqlite3']) expect(keys.has(dev), dev).toBe(false);
    expect(keys.has('node_modules/@forewarn/agent')).toBe(false); // the workspace link
    for (const [key, version] of shipped) {
      expect(lock.packages[key]?.dev, key).toBeFalsy();
      const manifest = path.join(REPO, key, 'package.json');
      expect((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version: string }).version, key).toBe(version);
    }
  });

  it('prunes native packages to linux-x64 and keeps their addons', async () => {
    const { keepPackageFile } = await load();
    expect(keepPackageFile('onnxruntime-node', 'bin/napi-v6/linux', true)).toBe(true);
    expect(keepPackageFile('onnxruntime-node', 'bin/napi-v6/linux/x64/onnxruntime_binding.node', false)).toBe(true);
    expect(keepPackageFile('onnxruntime-node', 'bin/napi-v6/linux/arm64', true)).toBe(false);
    expect(keepPackageFile('onnxruntime-node', 'bin/napi-v6/darwin', true)).toBe(false);
    expect(keepPackageFile('onnxruntime-node', 'bin/napi-v6/win32', true)).toBe(false);
    expect(keepPackageFile('better-sqlite3', 'build/Release/better_sqlite3.node', false)).toBe(true);
    expect(keepPackageFile('better-sqlite3', 'build/Release/obj', true)).toBe(false);
    expect(keepPackageFile('better-sqlite3', 'deps', true)).toBe(false);
    expect(keepPackageFile('better-sqlite3', 'lib', true)).toBe(true);
    expect(keepPackageFile('@serialport/bindings-cpp', 'prebuilds/linux-x64', true)).toBe(true);
    expect(keepPackageFile('@serialport/bindings-cpp', 'prebuilds/win32-x64', true)).toBe(false);
    expect(keepPackageFile('mqtt', 'node_modules', true)).toBe(false); // nested packages are lockfile entries of their own
    // The addons the pruning keeps are in this checkout (npm ci built or unpacked them).
    for (const addon of [
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
      'node_modules/@serialport/bindings-cpp/prebuilds/linux-x64',
    ]) {
      expect(fs.existsSync(path.join(REPO, addon)), addon).toBe(true);
    }
  });

  it('ships a default configuration that passes config check', () => {
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', path.join(REPO, 'scripts/forewarn.default.yaml')], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

// The tarball holds linux-x64 addons only.
describe.skipIf(process.platform !== 'linux' || process.arch !== 'x64')('package.mjs build', () => {
  it('builds a self-contained tarball that runs from an extraction and installs', { timeout: 180_000 }, async () => {
    const { buildPackage } = await load();
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'forewarn-package-test-'));
    tmpDirs.push(out);
    // verify: extract, check SHA256SUMS, then `version`, `config check` and a `run` (until its model loads) from the extraction.
    const built = await buildPackage({ outDir: out, version: '0.1.0-test.1', verify: true });
    expect(path.basename(built.tarball)).toBe('forewarn-0.1.0-test.1-linux-x64.tar.gz');
    expect(built.bytes).toBeLessThan(60 * 1024 * 1024);

    const top = 'forewarn-0.1.0-test.1-linux-x64/';
    const listing = execFileSync('tar', ['-tvzf', built.tarball], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }).split('\n');
    const names = new Set(listing.map((l) => l.split(/\s+/).slice(5).join(' ')));
    for (const f of [
      'VERSION',
      'BUILD-INFO',
      'SHA256SUMS',
      'package.json',
      'README.md',
      'bin/forewarn',
      'dist/agent/src/cli.js',
      'scripts/install.sh',
      'scripts/uninstall.sh',
      'scripts/forewarn.default.yaml',
      'models/machine-failure/model.onnx',
      'agent/src/central/console/static/index.html',
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
    ]) {
      expect(names.has(top + f), f).toBe(true);
    }
    const all = [...names];
    expect(all.filter((n) => n.includes('/dist/test/'))).toEqual([]);
    expect(all.filter((n) => /\/node_modules\/(typescript|vitest|@types\/better-sqlite3)\//.test(n))).toEqual([]);
    expect(all.filter((n) => /napi-v6\/(darwin|win32)|linux\/arm64/.test(n))).toEqual([]);
    expect(all.filter((n) => n.includes('__pycache__'))).toEqual([]);
    // Owner root, no group/other write, executables executable.
    for (const line of listing.filter(Boolean)) {
      expect(line, line).toMatch(/^[-d]r[-w][-x]r-[-x]r-[-x] 0\/0 /);
      if (line.includes('scripts/install.sh') || line.includes(' bin/forewarn')) expect(line).toMatch(/^-rwxr-xr-x/);
    }
    if (fs.existsSync(path.join(REPO, 'scripts/forewarn.service'))) expect(names.has(`${top}scripts/forewarn.service`)).toBe(true);

    // Installed with install.sh into a --root, the command runs from /opt/forewarn/current.
    const root = path.join(out, 'root');
    const r = spawnSync('bash', [path.join(REPO, 'scripts/install.sh'), '--root', root, built.tarball], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const version = execFileSync(path.join(root, 'opt/forewarn/current/bin/forewarn'), ['version'], {
      cwd: root,
      env: { PATH: path.dirname(process.execPath) + ':/usr/bin:/bin' },
      encoding: 'utf8',
    });
    expect(version.trim()).toBe('0.1.0-test.1');
  });
});
