#!/usr/bin/env node
// A stand-in for ipmitool that answers from recorded fixtures, so the production spawn-and-parse code runs in tests.
// FAKE_IPMITOOL_SET names a set in fixtures/sets.json; FAKE_IPMITOOL_ARGV_LOG, when set, gets each argv as a JSON line.
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const argv = process.argv.slice(2);
if (process.env.FAKE_IPMITOOL_ARGV_LOG) appendFileSync(process.env.FAKE_IPMITOOL_ARGV_LOG, JSON.stringify(argv) + '\n');
const sets = JSON.parse(readFileSync(path.join(dir, 'sets.json'), 'utf8'));
const set = sets[process.env.FAKE_IPMITOOL_SET ?? ''];
if (!set) {
  process.stderr.write(`fake-ipmitool: unknown FAKE_IPMITOOL_SET "${process.env.FAKE_IPMITOOL_SET}"\n`);
  process.exit(1);
}
const entry = set[argv.join(' ')];
if (!entry) {
  // ipmitool 1.8.19 on an unknown sub-command prints its usage and exits 1.
  process.stderr.write(`Invalid command: ${argv.join(' ')}\n`);
  process.exit(1);
}
const spec = typeof entry === 'string' ? { file: entry } : entry;
const body = spec.file ? readFileSync(path.join(dir, spec.file)) : Buffer.from(spec.text ?? '');
const done = () => {
  process.stdout.write(body);
  if (spec.stderr) process.stderr.write(spec.stderr);
  process.exitCode = spec.exit ?? 0;
};
if (spec.delayMs) setTimeout(done, spec.delayMs);
else done();
