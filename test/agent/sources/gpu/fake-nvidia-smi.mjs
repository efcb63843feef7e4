#!/usr/bin/env node
/**
 * A stand-in for `nvidia-smi` that replays the recorded fixtures in ./fixtures, so tests run the production
 * code path (spawn, read, parse) without a GPU. Environment:
 *   FAKE_NVIDIA_SMI_SET        fixture set (a key of fixtures/sets.json, which names its help text and may name
 *                              another folder or query CSV), default h100x8
 *   FAKE_NVIDIA_SMI_FIXTURES   fixture folder, default ./fixtures next to this script
 *   FAKE_NVIDIA_SMI_LOG        append one JSON line per invocation ({ t, pid, args }) to this file
 *   FAKE_NVIDIA_SMI_DIE_AFTER  in -lms mode, exit with code 1 after this many samples
 *   FAKE_NVIDIA_SMI_HANG_AFTER in -lms mode, stop printing (but stay alive) after this many samples
 *   FAKE_NVIDIA_SMI_FAIL       comma list of commands that fail: help, query, remapped, q, nvlink
 *   FAKE_NVIDIA_SMI_NO_DRIVER  when set, every command fails as nvidia-smi does without a loaded driver
 *   FAKE_NVIDIA_SMI_IDENTITY   the identity CSV (name, uuid, serial, …) instead of the set's identity.csv; read
 *                              at every invocation, so a test can rewrite it to swap a board
 * Like the real tool, it rejects --query-gpu fields that the set's --help-query-gpu does not list.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const env = process.env;
const dir = env.FAKE_NVIDIA_SMI_FIXTURES ?? join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const setName = env.FAKE_NVIDIA_SMI_SET ?? 'h100x8';
if (env.FAKE_NVIDIA_SMI_LOG) appendFileSync(env.FAKE_NVIDIA_SMI_LOG, JSON.stringify({ t: Date.now(), pid: process.pid, args }) + '\n');

const sets = JSON.parse(readFileSync(join(dir, 'sets.json'), 'utf8'));
const set = sets[setName];
if (!set) fail(`fake nvidia-smi: unknown fixture set ${setName}`, 2);
// A set names its folder (default: its own name) and may point the query CSV elsewhere (the malformed variants).
const fileOf = (name) => (name === 'query-gpu.csv' && set.query ? join(dir, set.query) : join(dir, set.dir ?? setName, name));
const read = (name) => (existsSync(fileOf(name)) ? readFileSync(fileOf(name), 'utf8') : '');
const failing = new Set((env.FAKE_NVIDIA_SMI_FAIL ?? '').split(',').filter(Boolean));

function fail(message, code) {
  process.stdout.write(message + '\n');
  process.exit(code);
}
function command() {
  if (args.includes('--help-query-gpu')) return 'help';
  if (args.some((a) => a.startsWith('--query-gpu='))) return 'query';
  if (args.some((a) => a.startsWith('--query-remapped-rows='))) return 'remapped';
  if (args[0] === 'nvlink' && args.includes('-e')) return 'nvlink';
  if (args.includes('-q') || args.includes('--query')) return 'q';
  return 'unknown';
}

const cmd = command();
if (env.FAKE_NVIDIA_SMI_NO_DRIVER) {
  fail("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.", 9);
}
if (failing.has(cmd)) fail(`Unable to determine the device handle for GPU 0000:9A:00.0: Unknown Error (fake failure of ${cmd})`, 15);

const helpText = readFileSync(join(dir, set.help), 'utf8');
switch (cmd) {
  case 'help':
    process.stdout.write(helpText);
    break;
  case 'remapped':
    process.stdout.write(read('remapped-rows.csv'));
    break;
  case 'q':
    process.stdout.write(read('q.txt'));
    break;
  case 'nvlink':
    process.stdout.write(read('nvlink-e.txt'));
    break;
  case 'query':
    query();
    break;
  default:
    fail("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.", 2);
}

function query() {
  // Alias groups from the help text: `"a" or "b"` lines.
  const group = new Map();
  for (const line of helpText.split('\n')) {
    const m = /^"([a-z0-9_.]+)"((?:\s+or\s+"[a-z0-9_.]+")*)\s*$/i.exec(line.trim());
    if (!m) continue;
    const names = [m[1], ...[...m[2].matchAll(/"([^"]+)"/g)].map((x) => x[1])];
    for (const n of names) group.set(n, names);
  }
  const requested = args
    .find((a) => a.startsWith('--query-gpu='))
    .slice('--query-gpu='.length)
    .split(',');
  for (const f of requested) if (!group.has(f)) fail(`Field "${f}" is not a valid field to query.`, 2);

  const text = read('query-gpu.csv');
  const header = /^# fields: (.*)$/m.exec(text);
  const columns = header ? header[1].split(',') : [];
  const samples = text
    .split(/\n\s*\n/)
    .map((block) => block.split('\n').filter((l) => l.trim() && !l.startsWith('#')))
    .filter((b) => b.length);
  const pick = requested.map((f) => columns.findIndex((c) => (group.get(f) ?? [f]).includes(c)));
  // The identity fields (name, uuid, serial, …) live in identity.csv, one line per GPU, joined on pci.bus_id.
  const idText = env.FAKE_NVIDIA_SMI_IDENTITY ? readFileSync(env.FAKE_NVIDIA_SMI_IDENTITY, 'utf8') : read('identity.csv');
  const idColumns = (/^# fields: (.*)$/m.exec(idText)?.[1] ?? '').split(',');
  const idRows = new Map(
    idText
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.split(', '))
      .map((cells) => [cells[idColumns.indexOf('pci.bus_id')], cells]),
  );
  const idPick = requested.map((f) => idColumns.findIndex((c) => (group.get(f) ?? [f]).includes(c)));
  const busAt = columns.indexOf('pci.bus_id');
  const render = (lines) =>
    lines
      .map((l) => {
        const cells = l.split(', ');
        const id = idRows.get(cells[busAt]);
        return pick.map((i, k) => (i >= 0 ? (cells[i] ?? '') : id && idPick[k] >= 0 ? (id[idPick[k]] ?? '') : '[N/A]')).join(', ');
      })
      .join('\n') + '\n';

  const loopAt = args.findIndex((a) => a === '-lms' || a === '--loop-ms' || a.startsWith('--loop-ms='));
  if (loopAt < 0) {
    process.stdout.write(render(samples[0] ?? []));
    return;
  }
  const ms = Number(args[loopAt].includes('=') ? args[loopAt].split('=')[1] : args[loopAt + 1]);
  const dieAfter = Number(env.FAKE_NVIDIA_SMI_DIE_AFTER ?? Infinity);
  const hangAfter = Number(env.FAKE_NVIDIA_SMI_HANG_AFTER ?? Infinity);
  let n = 0;
  const tick = () => {
    if (n >= dieAfter) {
      process.stderr.write('fake nvidia-smi: dying as asked\n');
      process.exit(1);
    }
    if (n < hangAfter) process.stdout.write(render(samples[n % samples.length] ?? []));
    n++;
  };
  tick();
  setInterval(tick, ms);
}
