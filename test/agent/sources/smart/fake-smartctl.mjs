#!/usr/bin/env node
// A stand-in for smartctl that answers from recorded fixtures, so the production spawn-and-parse code runs in tests.
// FAKE_SMARTCTL_SET names a set in fixtures/sets.json; FAKE_SMARTCTL_ARGV_LOG, when set, gets each argv as a JSON line;
// FAKE_SMARTCTL_FIXTURES points at another fixture folder (a copy a test edits between samples).
// Flags are checked against the ones smartctl 7.3 accepts for the commands the source runs; anything else fails as
// smartctl does on a bad command line (exit 1).
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = process.env.FAKE_SMARTCTL_FIXTURES ?? path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const argv = process.argv.slice(2);
if (process.env.FAKE_SMARTCTL_ARGV_LOG) appendFileSync(process.env.FAKE_SMARTCTL_ARGV_LOG, JSON.stringify(argv) + '\n');

const sets = JSON.parse(readFileSync(path.join(dir, 'sets.json'), 'utf8'));
const set = sets[process.env.FAKE_SMARTCTL_SET ?? ''];
if (!set) {
  process.stderr.write(`fake-smartctl: unknown FAKE_SMARTCTL_SET "${process.env.FAKE_SMARTCTL_SET}"\n`);
  process.exit(1);
}

const KNOWN = new Set([
  '--json',
  '-j',
  '--info',
  '--health',
  '--attributes',
  '--tolerance=verypermissive',
  '--nocheck=standby',
  '--log=error',
  '--scan',
  '--scan-open',
]);
const bad = argv.filter((a) => a.startsWith('-') && !KNOWN.has(a) && !/^--device=\S+$/.test(a));
if (bad.length) {
  process.stdout.write(`=======> UNRECOGNIZED OPTION: ${bad[0]}\n`);
  process.exit(1);
}

function emit(entry) {
  const spec = typeof entry === 'string' ? { file: entry } : entry;
  const body = readFileSync(path.join(dir, spec.file));
  let exit = spec.exit;
  if (exit === undefined) {
    try {
      exit = JSON.parse(body.toString('utf8')).smartctl.exit_status;
    } catch {
      exit = 0;
    }
  }
  const done = () => {
    process.stdout.write(body);
    if (spec.stderr) process.stderr.write(spec.stderr);
    process.exitCode = exit;
  };
  if (spec.delayMs) setTimeout(done, spec.delayMs);
  else done();
}

if (argv.includes('--scan') || argv.includes('--scan-open')) {
  if (!set.scan) {
    process.stderr.write('fake-smartctl: this set has no scan output\n');
    process.exit(1);
  }
  emit(set.scan);
} else {
  const dev = argv.filter((a) => !a.startsWith('-')).at(-1);
  const entry = dev ? set.devices[dev] : undefined;
  if (!entry) {
    // What smartctl 7.3 printed on the recording VM for a device that does not exist (vm-sdz-no-such-device.json).
    const type = (argv.find((a) => a.startsWith('--device=')) ?? '--device=auto').slice(9);
    process.stdout.write(
      JSON.stringify(
        {
          json_format_version: [1, 0],
          smartctl: {
            version: [7, 3],
            argv: ['smartctl', ...argv],
            messages: [{ string: `Smartctl open device: ${dev} [${type.toUpperCase()}] failed: No such device`, severity: 'error' }],
            exit_status: 2,
          },
        },
        null,
        2,
      ) + '\n',
    );
    process.exit(2);
  }
  emit(entry);
}
