#!/usr/bin/env node
// CPU A/B of agent builds in the same windows (issue #13, docs/benchmarks.md): one mosquitto, the acknowledging
// reference subscriber, and one agent per BUILD given, all running together, each with the side-by-side bench's
// configuration (test/bench/side-by-side/peers.ts agentConfig, so the same work as the bench). CPU per agent is the
// sum over its threads of /proc/PID/task/*/schedstat (ns) over each window; the median of the windows is printed,
// and each agent's VmRSS at the end.
// Give each build three or four times, alternating (A B A B A B), and compare the medians per build: on a shared VM
// the position alone moves a figure (on the 2-core VM of docs/benchmarks.md one or two agents, often the first,
// measured 2-3x the others in every run, whatever they ran). --cpus LIST runs the agents under `taskset -c LIST`:
// with `--cpus 0` (away from the CPU that takes the disk's interrupts there) six agents of one build measured within
// 1.6x of each other with no such outlier (one run), but the VM's drift over a few minutes was larger than that.
//
// usage: node scripts/cpu-ab.mjs [--profile host-only|defaults] [--interval MS] [--warmup S] [--window S]
//          [--windows N] [--cpus LIST] BUILD[#flags=F1,F2][#env=K=V;K=V] ...
//   warm-up: at least the bench's (past the anomaly baseline: 57 s at 1 s, 265 s at 5 s).
//   BUILD: a checkout with dist/ built (npx tsc -p tsconfig.json); flags: node flags for that agent; env: its
//   environment overrides (FOREWARN_* settings, docs/configuration.md).
//   e.g. node scripts/cpu-ab.mjs /tmp/old . /tmp/old . /tmp/old .
//   Two peers go beside the agents, in the same windows: `collectd` (the bench's collectd with its mqtt plugin, same
//   broker and interval; needs collectd-core) and `floor` (scripts/node-floor.mjs: the least a Node process does
//   for the same reading, commit and publish), e.g. node scripts/cpu-ab.mjs --interval 5000 collectd floor . collectd floor .
//   A `floor` takes #flags= and #env= too (default flags: the agent's; FOREWARN_FLOOR_WORK=read,commit takes it apart).
// Needs this checkout built (it reads the bench's configuration from dist/).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { agentConfig, COLLECTD, collectdConfig, DAEMON_NODE_FLAGS, nodeFloorArgs, warmupSeconds } = await import(
  path.join(root, 'dist/test/bench/side-by-side/peers.js')
);

const opt = { profile: 'host-only', interval: 1000, warmup: 0, window: 60, windows: 3, cpus: '' };
const builds = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i].startsWith('--')) opt[argv[i].slice(2)] = ['--profile', '--cpus'].includes(argv[i]) ? argv[++i] : Number(argv[++i]);
  else builds.push(argv[i]);
}
if (!builds.length || !['host-only', 'defaults'].includes(opt.profile)) {
  console.error(
    'usage: node scripts/cpu-ab.mjs [--profile host-only|defaults] [--interval MS] [--warmup S] [--window S] [--windows N] [--cpus LIST] BUILD[#flags=F1,F2][#env=K=V;K=V] ...',
  );
  process.exit(2);
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'fw-cpu-ab-'));
const procs = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const start = (file, args, env = {}) => {
  const p = spawn(file, args, { stdio: 'ignore', cwd: dir, env: { ...process.env, ...env } });
  procs.push(p);
  return p;
};
const freePort = () =>
  new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
function cpuNs(pid) {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return sum;
}
const vmRssMiB = (pid) => (Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024).toFixed(1);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const port = await freePort();
  writeFileSync(path.join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  start('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')]);
  await sleep(500);
  const brokerUrl = `mqtt://127.0.0.1:${port}`;
  start(process.execPath, [path.join(root, 'dist/agent/src/cli.js'), 'subscribe', '--url', brokerUrl, '--db', path.join(dir, 'central.db')]);
  await sleep(1500);
  const agents = [];
  for (const [i, spec] of builds.entries()) {
    // Started interval/N apart: each agent's grid (agent/src/core/grid.ts) starts at its process start, so agents
    // started together tick together and contend for the 2 CPUs in every tick, the first ones persistently losing
    // (one or two agents at 2-3x the others, whatever their build). Spread, they tick as lone agents do.
    if (i > 0) await sleep(opt.interval / builds.length);
    const [build, ...options] = spec.split('#');
    const flags = options.find((o) => o.startsWith('flags='))?.slice('flags='.length);
    // env=K=V;K=V: the agent's FOREWARN_* overrides (docs/configuration.md), e.g. to compare settings.
    const env = Object.fromEntries(
      (
        options
          .find((o) => o.startsWith('env='))
          ?.slice('env='.length)
          .split(';') ?? []
      )
        .filter(Boolean)
        .map((kv) => [kv.split('=')[0], kv.slice(kv.indexOf('=') + 1)]),
    );
    const id = `ab-${i}`;
    mkdirSync(path.join(dir, id));
    const nodeFlags = flags === undefined ? DAEMON_NODE_FLAGS : flags.split(',').filter(Boolean);
    if (build === 'collectd') {
      if (!COLLECTD) throw new Error('collectd is not installed (apt-get install collectd-core)');
      const conf = path.join(dir, id, 'collectd.conf');
      writeFileSync(conf, collectdConfig({ dir: path.join(dir, id), intervalS: opt.interval / 1000, brokerPort: port, hostname: id }));
      agents.push({ label: `${id} collectd`, p: start(COLLECTD, ['-f', '-C', conf]), windows: [] });
      continue;
    }
    const envLabel = Object.keys(env).length ? ` ${JSON.stringify(env)}` : '';
    if (build === 'floor') {
      const args = nodeFloorArgs({ brokerUrl, dir: path.join(dir, id), intervalMs: opt.interval, flags: nodeFlags });
      agents.push({ label: `${id} floor [${nodeFlags.join(' ')}]${envLabel}`, p: start(process.execPath, args, env), windows: [] });
      continue;
    }
    const file = path.join(dir, `${id}.yaml`);
    // JSON is YAML.
    writeFileSync(file, JSON.stringify(agentConfig(opt.profile, { id, dir: path.join(dir, id), brokerUrl, intervalMs: opt.interval })));
    const args = [...nodeFlags, path.join(path.resolve(build), 'dist/agent/src/cli.js'), 'run', '--config', file];
    const p = opt.cpus ? start('taskset', ['-c', opt.cpus, process.execPath, ...args], env) : start(process.execPath, args, env);
    agents.push({ label: `${id} ${build} [${nodeFlags.join(' ')}]${envLabel}`, p, windows: [] });
  }
  // Past the anomaly baseline, as the bench does, unless --warmup says longer.
  await sleep(Math.max(opt.warmup, warmupSeconds(15, opt.interval / 1000)) * 1000);
  for (let w = 0; w < opt.windows; w++) {
    const before = agents.map((a) => cpuNs(a.p.pid));
    const t0 = process.hrtime.bigint();
    await sleep(opt.window * 1000);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    agents.forEach((a, i) => a.windows.push((cpuNs(a.p.pid) - before[i]) / 1e6 / s));
    console.log(
      `window ${w + 1}, load ${readFileSync('/proc/loadavg', 'utf8').split(' ', 3).join(' ')}: ${agents.map((a) => a.windows.at(-1).toFixed(2)).join(', ')} ms/s`,
    );
  }
  for (const a of agents) {
    if (a.p.exitCode !== null) throw new Error(`${a.label} exited early (code ${a.p.exitCode})`);
    console.log(`${a.label}: median ${median(a.windows).toFixed(2)} ms/s [${a.windows.map((x) => x.toFixed(2)).join(', ')}], VmRSS ${vmRssMiB(a.p.pid)} MiB`);
  }
} finally {
  for (const p of procs.reverse()) if (p.exitCode === null) p.kill('SIGTERM');
  await sleep(3000);
  rmSync(dir, { recursive: true, force: true });
}
