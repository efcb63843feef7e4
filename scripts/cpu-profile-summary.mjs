#!/usr/bin/env node
// Where a process's CPU went, from a V8 .cpuprofile (node --cpu-prof): the share of the non-idle samples per
// function, self and inclusive (a function counted once per sample however deep it recurses), from SKIP seconds
// after the profile's start, so that start-up and warm-up can be left out (docs/benchmarks.md, issue #13).
// Samples are wall-clock ticks of the main thread, so the shares are of its busy time; other threads are not in it.
//
// usage: node scripts/cpu-profile-summary.mjs FILE.cpuprofile [SKIP_SECONDS=0] [TOP=40]
//   e.g. node scripts/cpu-ab.mjs --interval 5000 ".#flags=--v8-pool-size=1,--no-opt,--cpu-prof,--cpu-prof-dir=/tmp/prof"
//        node scripts/cpu-profile-summary.mjs /tmp/prof/CPU.*.cpuprofile 275
import { readFileSync } from 'node:fs';

const [file, skipArg = '0', topArg = '40'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/cpu-profile-summary.mjs FILE.cpuprofile [SKIP_SECONDS=0] [TOP=40]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const label = (n) =>
  `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/.*\/(node_modules|dist)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;

const from = profile.startTime + Number(skipArg) * 1e6;
const self = new Map();
const inclusive = new Map();
let busy = 0;
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i];
  const leaf = nodes.get(profile.samples[i]);
  if (t < from || leaf.callFrame.functionName === '(idle)') continue;
  busy++;
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + 1);
  const seen = new Set();
  for (let id = leaf.id; id !== undefined; id = parent.get(id)) {
    const key = label(nodes.get(id));
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + 1);
  }
}
console.log(`${busy} busy samples of the main thread over ${((profile.endTime - from) / 1e6).toFixed(0)} s`);
for (const [title, counts] of [
  ['self', self],
  ['inclusive', inclusive],
]) {
  console.log(`--- ${title}`);
  for (const [key, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) {
    console.log(`${((100 * n) / Math.max(1, busy)).toFixed(1).padStart(5)} % ${key}`);
  }
}
