import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * A small package in the release layout of `npm run package` (VERSION, BUILD-INFO, bin/, dist/…/cli.js, the
 * install scripts, SHA256SUMS), quick to make: the install and rollout scripts never look at the agent itself.
 */

const REPO = path.resolve(import.meta.dirname, '../..');

export interface FakeReleaseOptions {
  /** Where the tarball goes. */
  dir: string;
  version: string;
  /** The body of dist/agent/src/cli.js; by default it prints the version. */
  cli?: string;
  /** Suffix of the tarball's file name, to tell variants apart. */
  tag?: string;
  /** Alters the tree after SHA256SUMS is written (a tampered package). */
  tamper?: (top: string) => void;
}

export function makeFakeRelease(o: FakeReleaseOptions): string {
  const stage = fs.mkdtempSync(path.join(o.dir, 'stage-'));
  const name = `forewarn-${o.version}-linux-x64`;
  const top = path.join(stage, name);
  const write = (rel: string, text: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(top, rel)), { recursive: true });
    fs.writeFileSync(path.join(top, rel), text, { mode });
    fs.chmodSync(path.join(top, rel), mode);
  };
  const fromRepo = (rel: string, fallback?: string) => {
    const file = path.join(REPO, rel);
    return fs.existsSync(file) || fallback === undefined ? fs.readFileSync(file, 'utf8') : fallback;
  };
  write('VERSION', `${o.version}\n`);
  write('BUILD-INFO', `version=${o.version}\nplatform=linux-x64\nnode=${process.version}\nnode_abi=${process.versions.modules}\n`);
  write('package.json', JSON.stringify({ name: 'forewarn', version: o.version, type: 'module' }));
  write('dist/agent/src/cli.js', o.cli ?? `process.stdout.write(${JSON.stringify(`${o.version}\n`)});\n`);
  write('bin/forewarn', '#!/bin/sh\nexec node "$(dirname "$(readlink -f "$0")")/../dist/agent/src/cli.js" "$@"\n', 0o755);
  write('scripts/forewarn.default.yaml', fromRepo('scripts/forewarn.default.yaml'));
  write('scripts/forewarn.service', fromRepo('scripts/forewarn.service', '[Service]\nExecStart=/bin/true\n'));
  write('scripts/install.sh', fromRepo('scripts/install.sh'), 0o755);
  write('scripts/uninstall.sh', fromRepo('scripts/uninstall.sh'), 0o755);
  const files = execFileSync('find', ['.', '-type', 'f'], { cwd: top, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((f) => f.slice(2))
    .sort();
  fs.writeFileSync(
    path.join(top, 'SHA256SUMS'),
    files
      .map(
        (f) =>
          `${createHash('sha256')
            .update(fs.readFileSync(path.join(top, f)))
            .digest('hex')}  ${f}\n`,
      )
      .join(''),
  );
  o.tamper?.(top);
  const tarball = path.join(o.dir, `${name}${o.tag ? `-${o.tag}` : ''}-${path.basename(stage)}.tar.gz`);
  execFileSync('tar', ['-czf', tarball, '-C', stage, name]);
  fs.rmSync(stage, { recursive: true });
  return tarball;
}
