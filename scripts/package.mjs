#!/usr/bin/env node
// Builds the self-contained release tarball: build/forewarn-<version>-linux-x64.tar.gz (docs/install.md).
//
//   npm run package                    tsc, then this script: stage, checksum, tar, then verify the tarball
//   node scripts/package.mjs [--out DIR] [--version X.Y.Z] [--no-verify]
//
// The production dependencies are copied from this checkout's node_modules (as `npm ci` installed them,
// native addons already built), restricted to the lockfile's non-dev packages and checked against the
// lockfile's versions; native packages are pruned to linux-x64. Nothing is fetched: no registry, no compiler.
// FOREWARN_PACKAGE_VERSION overrides the version (as --version does); SOURCE_DATE_EPOCH fixes the file times.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PLATFORM = 'linux-x64';

/** Files copied from scripts/ into the package (the service unit is optional until it exists). */
const SCRIPT_FILES = ['install.sh', 'uninstall.sh', 'forewarn.default.yaml'];
const OPTIONAL_SCRIPT_FILES = ['forewarn.service'];
/** Opt-in extras for the unit, shipped but not installed: drop-ins for privileged sources, udev rules. */
const OPTIONAL_SCRIPT_DIRS = ['forewarn.service.d', 'udev'];

function fail(message) {
  throw new Error(message);
}

function say(message) {
  process.stdout.write(`package: ${message}\n`);
}

/** Copies a tree, following the filter (relative path, is-directory) → keep. No symlinks are copied. */
function copyTree(from, to, keep = () => true, rel = '') {
  const st = fs.lstatSync(from);
  if (st.isSymbolicLink()) return;
  if (st.isDirectory()) {
    fs.mkdirSync(to, { recursive: true });
    for (const name of fs.readdirSync(from).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const f = path.join(from, name);
      if (!keep(r, fs.lstatSync(f).isDirectory())) continue;
      copyTree(f, path.join(to, name), keep, r);
    }
    return;
  }
  if (!st.isFile()) return;
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
  fs.chmodSync(to, st.mode & 0o111 ? 0o755 : 0o644);
}

/**
 * Prunes a production package's files: other platforms' native binaries and native build leftovers.
 * `rel` is relative to the package's own folder.
 */
export function keepPackageFile(name, rel, _isDir) {
  if (rel === 'node_modules' || rel.endsWith('/.bin') || rel === '.bin') return false; // nested packages are lockfile entries of their own
  if (name === 'onnxruntime-node') {
    // bin/napi-vN/<os>/<arch>: only linux/x64.
    const m = /^bin\/napi-v\d+\/([^/]+)(?:\/([^/]+))?/.exec(rel);
    if (m && (m[1] !== 'linux' || (m[2] !== undefined && m[2] !== 'x64'))) return false;
  }
  if (name === 'better-sqlite3') {
    // Built from source by `npm ci`: keep the addon, not the SQLite sources or the object files.
    if (rel === 'deps' || rel === 'src' || rel === 'binding.gyp') return false;
    if (rel.startsWith('build') && !(rel === 'build' || rel === 'build/Release' || rel === 'build/Release/better_sqlite3.node')) return false;
  }
  if (name === '@serialport/bindings-cpp') {
    if (rel === 'src' || rel === 'binding.gyp') return false;
    const m = /^prebuilds\/([^/]+)/.exec(rel);
    if (m && m[1] !== PLATFORM) return false;
    if (rel.startsWith('build/') && !/^build\/Release(\/[^/]+\.node)?$/.test(rel)) return false;
  }
  return true;
}

/** The production packages of the lockfile, as [installPath, version, name]. */
export function productionPackages(lock) {
  const out = [];
  for (const [key, entry] of Object.entries(lock.packages ?? {})) {
    if (!key.startsWith('node_modules/')) continue; // the root and the workspace folders
    if (entry.dev || entry.link) continue; // --omit=dev; workspace links (the `forewarn` bin is shipped as bin/forewarn)
    if (entry.os && !entry.os.includes('linux')) continue;
    if (entry.cpu && !entry.cpu.includes('x64')) continue;
    const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
    out.push([key, entry.version, name, entry.optional === true]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

function listFiles(dir, rel = '') {
  const out = [];
  for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = fs.lstatSync(path.join(dir, r));
    if (st.isDirectory()) out.push(...listFiles(dir, r));
    else if (st.isFile()) out.push(r);
    else fail(`unexpected non-file in the staging tree: ${r}`);
  }
  return out;
}

function sha256(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** How long the `run` check waits for the agent to load its model before it stops it (and fails). */
const RUN_CHECK_BOUND_MS = 60_000;

/**
 * Extracts the tarball into a fresh folder and runs the agent from there: version, config check, and a `run` until its
 * model has loaded on a reading.
 */
export async function verifyTarball(tarball, expectedVersion) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'forewarn-verify-'));
  try {
    execFileSync('tar', ['-xzf', tarball, '-C', tmp]);
    const top = path.join(tmp, path.basename(tarball).replace(/\.tar\.gz$/, ''));
    if (!fs.existsSync(top)) throw new Error(`the tarball has no ${path.basename(top)}/ folder`);
    execFileSync('sha256sum', ['--quiet', '--strict', '-c', 'SHA256SUMS'], { cwd: top, stdio: 'pipe' });
    // No access to the repository's node_modules: cwd in the extraction, no NODE_PATH, no npm environment.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_PATH' && !k.startsWith('npm_') && !k.startsWith('FOREWARN_')));
    const cli = path.join(top, 'dist/agent/src/cli.js');
    const node = (args) => execFileSync(process.execPath, [cli, ...args], { cwd: top, env, encoding: 'utf8', stdio: 'pipe' });
    const version = node(['version']).trim();
    if (version !== expectedVersion) throw new Error(`\`forewarn version\` printed ${version}, expected ${expectedVersion}`);
    node(['config', 'check', path.join(top, 'scripts/forewarn.default.yaml')]);
    const dataDir = path.join(tmp, 'data');
    const config = path.join(tmp, 'forewarn.yaml');
    fs.writeFileSync(
      config,
      [
        'agent: { id: package-check, view: "off" }',
        `storage: { dir: ${JSON.stringify(dataDir)} }`,
        'broker: { url: "mqtt://127.0.0.1:9", connectTimeoutMs: 500 }',
        'sources:',
        '  simulator: { enabled: true, transport: direct, speedup: 600 }',
        '  gpu: { enabled: false }',
        '  smart: { enabled: false }',
        '',
      ].join('\n'),
    );
    node(['config', 'check', config]);
    const log = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cli, 'run', '--config', config], { cwd: top, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.stderr.on('data', (d) => (text += d));
      // Stopped once it has scored a reading (the model loads on the first one), not after a fixed time: on a loaded
      // machine the start alone can take seconds. The bound only ends a run that never gets there (the check fails).
      const stop = () => child.kill('SIGINT');
      const timer = setTimeout(stop, RUN_CHECK_BOUND_MS);
      const watch = () => {
        if (text.includes('"msg":"model loaded"')) {
          clearTimeout(timer);
          child.stdout.off('data', watch);
          child.stderr.off('data', watch);
          stop();
        }
      };
      child.stdout.on('data', watch);
      child.stderr.on('data', watch);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) reject(new Error(`\`forewarn run\` exited with ${code}:\n${text}`));
        else resolve(text);
      });
    });
    for (const msg of ['model loaded', 'agent stopped']) {
      if (!log.includes(`"msg":"${msg}"`)) throw new Error(`\`forewarn run\` did not log "${msg}":\n${log}`);
    }
    if (!fs.existsSync(dataDir) || fs.readdirSync(dataDir).length === 0) throw new Error('`forewarn run` wrote nothing to its storage dir');
    return { version, log };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export async function buildPackage({ outDir = path.join(REPO, 'build'), version: override, verify = true } = {}) {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    fail(`the package ships this host's native addons, so it is built on linux-x64 (this is ${process.platform}-${process.arch})`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8'));
  const version = override || pkg.version;
  if (!/^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$/.test(version)) fail(`not a release version: ${JSON.stringify(version)}`);
  if (!fs.existsSync(path.join(REPO, 'dist/agent/src/cli.js'))) fail('dist/ is not built: run `npm run package` (it runs tsc first)');

  const name = `forewarn-${version}-${PLATFORM}`;
  fs.mkdirSync(outDir, { recursive: true });
  const stage = fs.mkdtempSync(path.join(outDir, '.stage-'));
  const top = path.join(stage, name);
  try {
    fs.mkdirSync(top);
    // Compiled code: the agent and the firmware bridge it imports; no tests, no source maps (the sources are not shipped).
    for (const part of ['agent', 'firmware-bridge']) {
      copyTree(path.join(REPO, 'dist', part), path.join(top, 'dist', part), (r, isDir) => isDir || (r.endsWith('.js') && !r.includes('/test/')));
    }
    // The Sparkplug B schema is read at run time from its source path (agent/src/sync/sparkplug/sparkplug-codec.ts).
    copyTree(path.join(REPO, 'agent/src/sync/sparkplug/sparkplug_b.proto'), path.join(top, 'agent/src/sync/sparkplug/sparkplug_b.proto'));
    // The console's pages and assets are served at run time from their source path (central/console/static-files.ts).
    copyTree(
      path.join(REPO, 'agent/src/central/console/static'),
      path.join(top, 'agent/src/central/console/static'),
      (r) => !r.split('/').some((p) => p.startsWith('.')),
    );
    // Production dependencies, exactly the lockfile's versions.
    let packages = 0;
    for (const [key, want, pkgName, optional] of productionPackages(lock)) {
      const src = path.join(REPO, key);
      const manifest = path.join(src, 'package.json');
      if (!fs.existsSync(manifest)) {
        if (optional) continue;
        fail(`${key} is not installed: run \`npm ci\` first`);
      }
      const have = JSON.parse(fs.readFileSync(manifest, 'utf8')).version;
      if (have !== want) fail(`${key} is ${have} but the lockfile says ${want}: run \`npm ci\` first`);
      copyTree(src, path.join(top, key), (r, isDir) => keepPackageFile(pkgName, r, isDir));
      packages++;
    }
    // The native addons must be there after pruning.
    for (const addon of [
      'node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
      `node_modules/@serialport/bindings-cpp/prebuilds/${PLATFORM}`,
    ]) {
      if (!fs.existsSync(path.join(top, addon))) fail(`native addon missing from the package: ${addon}`);
    }
    // Models, without Python caches.
    copyTree(path.join(REPO, 'models'), path.join(top, 'models'), (r) => !r.split('/').includes('__pycache__') && !r.endsWith('.pyc'));
    // Scripts: install, uninstall, the default configuration and the service unit.
    for (const f of [...SCRIPT_FILES, ...OPTIONAL_SCRIPT_FILES]) {
      const src = path.join(REPO, 'scripts', f);
      if (!fs.existsSync(src)) {
        if (OPTIONAL_SCRIPT_FILES.includes(f)) {
          say(`warning: scripts/${f} does not exist; the package has no ${f}`);
          continue;
        }
        fail(`scripts/${f} is missing`);
      }
      copyTree(src, path.join(top, 'scripts', f));
    }
    for (const d of OPTIONAL_SCRIPT_DIRS) {
      if (fs.existsSync(path.join(REPO, 'scripts', d))) copyTree(path.join(REPO, 'scripts', d), path.join(top, 'scripts', d));
    }
    for (const f of ['install.sh', 'uninstall.sh']) fs.chmodSync(path.join(top, 'scripts', f), 0o755);
    // Docs: the README, the licence, the configuration reference and the install guide.
    for (const f of ['README.md', 'LICENSE', 'NOTICE']) {
      if (fs.existsSync(path.join(REPO, f))) copyTree(path.join(REPO, f), path.join(top, f));
      else if (f === 'LICENSE') say("warning: the repository has no LICENSE file; the package carries package.json's licence field only");
    }
    copyTree(path.join(REPO, 'docs'), path.join(top, 'docs'), (r, isDir) => !isDir && /\.(md|ya?ml)$/.test(r));
    // package.json: PACKAGE_ROOT and `forewarn version` read it; "type": "module" makes dist/ ESM.
    const shipped = {
      name: pkg.name,
      version,
      description: pkg.description,
      license: pkg.license,
      type: pkg.type,
      private: true,
      engines: pkg.engines,
      dependencies: pkg.dependencies,
    };
    fs.writeFileSync(path.join(top, 'package.json'), `${JSON.stringify(shipped, null, 2)}\n`);
    fs.writeFileSync(path.join(top, 'VERSION'), `${version}\n`);
    // What the native addons were built for: better-sqlite3 is tied to the Node ABI (install.sh checks it).
    fs.writeFileSync(
      path.join(top, 'BUILD-INFO'),
      [
        `version=${version}`,
        `platform=${PLATFORM}`,
        `node=${process.version}`,
        `node_abi=${process.versions.modules}`,
        `napi=${process.versions.napi}`,
        '',
      ].join('\n'),
    );
    // The command: bin/forewarn runs the compiled CLI with whatever `node` is on PATH.
    fs.mkdirSync(path.join(top, 'bin'));
    fs.writeFileSync(
      path.join(top, 'bin/forewarn'),
      '#!/bin/sh\n# The forewarn command of an installed package (docs/install.md).\nhere=$(dirname "$(readlink -f "$0")")\nexec node "$here/../dist/agent/src/cli.js" "$@"\n',
      { mode: 0o755 },
    );
    fs.chmodSync(path.join(top, 'bin/forewarn'), 0o755);

    // SHA256SUMS: every file, sorted, in `sha256sum -c` format.
    const files = listFiles(top);
    fs.writeFileSync(path.join(top, 'SHA256SUMS'), files.map((f) => `${sha256(path.join(top, f))}  ${f}\n`).join(''));

    const tarball = path.join(outDir, `${name}.tar.gz`);
    const partial = `${tarball}.partial`;
    const mtime = process.env.SOURCE_DATE_EPOCH ? `@${process.env.SOURCE_DATE_EPOCH}` : `@${Math.floor(Date.now() / 1000)}`;
    execFileSync(
      'tar',
      ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=${mtime}`, '--mode=go-w', '-I', 'gzip -n', '-cf', partial, '-C', stage, name],
      { stdio: 'inherit' },
    );
    fs.renameSync(partial, tarball);
    const bytes = fs.statSync(tarball).size;
    say(`${path.relative(process.cwd(), tarball) || tarball}: ${(bytes / 1048576).toFixed(1)} MiB, ${files.length + 1} files, ${packages} production packages`);
    if (verify) {
      await verifyTarball(tarball, version);
      say('verified: checksums, `version`, `config check` and a `run` that loaded its model, from the extracted tarball');
    }
    return { tarball, version, files: files.length + 1, bytes, packages };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, version: { type: 'string' }, 'no-verify': { type: 'boolean', default: false } },
  });
  buildPackage({
    outDir: values.out ? path.resolve(values.out) : undefined,
    version: values.version ?? process.env.FOREWARN_PACKAGE_VERSION,
    verify: !values['no-verify'],
  }).catch((err) => {
    process.stderr.write(`package: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
