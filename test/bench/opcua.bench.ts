/**
 * OPC UA source: what 1,000 monitored items cost the agent. A real node-opcua server in its own process
 * (opcua-server-child.ts) changes 1,000 variables every 100 ms (10,000 data changes a second); the agent's
 * OpcuaSource subscribes to all of them with a 100 ms publishing interval and turns each publish into readings.
 * Reported per security mode: this process's CPU time per notification (process.cpuUsage(), all threads, over
 * windows of WINDOW_MS, the median of WINDOWS), CPU share of one core, notifications a second, and how long
 * connecting and creating the 1,000 items took. The server's CPU is its own process's and is not counted.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { type BenchReport, median, processCpuMs, round } from './bench-harness.js';
import { OPCUA_ENDPOINT_DEFAULTS, type OpcuaEndpointConfig, type SecurityModeName } from '../../agent/src/sources/opcua/opcua-config.js';
import { OpcuaPki } from '../../agent/src/sources/opcua/opcua-pki.js';
import { OpcuaSource } from '../../agent/src/sources/opcua/opcua-source.js';

const ITEMS = 1000;
const CHANGE_EVERY_MS = 100;
const WINDOWS = 5;
const WINDOW_MS = 3000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fw-bench-opcua-'));
  const log = pino({ level: 'warn' });
  const pki = new OpcuaPki(path.join(dir, 'agent-pki'), 'bench');
  await pki.open(log);
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'opcua-server-child.js');
  const child = spawn(
    process.execPath,
    [
      script,
      JSON.stringify({
        dir: path.join(dir, 'server'),
        variables: ITEMS,
        changeEveryMs: CHANGE_EVERY_MS,
        trust: path.join(pki.dir, 'own', 'certs', 'forewarn.pem'),
      }),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const rows: BenchReport['rows'] = [];
  try {
    const info = await new Promise<{ port: number; certificateFile: string; namespaceIndex: number; asset: string }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += String(d);
        // node-opcua writes its own warnings on stdout too: the answer is the line that starts with {"port".
        const line = out.split('\n').find((l) => l.startsWith('{"port"'));
        if (line) resolve(JSON.parse(line) as { port: number; certificateFile: string; namespaceIndex: number; asset: string });
      });
      child.once('exit', (code) => reject(new Error(`the OPC UA server exited with ${code}`)));
    });
    copyFileSync(info.certificateFile, path.join(pki.trustedFolder, 'bench-server.pem'));
    await pki.reload();
    const nodes = Array.from({ length: ITEMS }, (_, i) => ({
      nodeId: `ns=${info.namespaceIndex};s=${info.asset}.Extra${i}`,
      asset: `asset-${i % 10}`,
      signal: `v${i}`,
    }));
    for (const mode of ['None', 'SignAndEncrypt'] as SecurityModeName[]) {
      let readings = 0;
      const cfg: OpcuaEndpointConfig = {
        ...OPCUA_ENDPOINT_DEFAULTS,
        name: 'bench',
        url: `opc.tcp://127.0.0.1:${info.port}/forewarn-test`,
        securityMode: mode,
        securityPolicy: mode === 'None' ? 'None' : 'Basic256Sha256',
        identity: { type: 'anonymous', userName: '', passwordFile: '', passwordEnv: '', certificateFile: '', privateKeyFile: '' },
        publishingIntervalMs: 100,
        samplingIntervalMs: 0,
        queueSize: 10,
        nodes,
      };
      const src = new OpcuaSource(cfg, pki, () => readings++, log);
      const started = performance.now();
      await src.start();
      while (!src.connected) await sleep(20);
      const connectMs = performance.now() - started;
      await sleep(2000); // the initial values and the JIT settle
      const perNotificationUs: number[] = [];
      const coreShare: number[] = [];
      const rates: number[] = [];
      for (let w = 0; w < WINDOWS; w++) {
        const values0 = src.counters.values;
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        await sleep(WINDOW_MS);
        const cpu = process.cpuUsage(cpu0);
        const elapsed = performance.now() - t0;
        const n = src.counters.values - values0;
        const cpuMs = (cpu.user + cpu.system) / 1000;
        perNotificationUs.push((cpuMs * 1000) / Math.max(1, n));
        coreShare.push((100 * cpuMs) / elapsed);
        rates.push((n * 1000) / elapsed);
      }
      await src.stop();
      if (src.counters.values === 0) throw new Error(`${mode}: no notifications arrived`);
      rows.push({
        security: mode === 'None' ? 'None' : 'SignAndEncrypt / Basic256Sha256',
        items: ITEMS,
        'notifications/s': round(median(rates)),
        'CPU µs/notification': round(median(perNotificationUs)),
        'CPU % of one core': round(median(coreShare)),
        'connect + 1,000 items (ms)': round(connectMs),
        readings: readings,
      });
    }
    rows.push({
      security: '(server process, whole run)',
      items: ITEMS,
      'CPU % of one core': '',
      'connect + 1,000 items (ms)': '',
      readings: `${round(processCpuMs(child.pid!))} ms CPU`,
    });
  } finally {
    child.stdin!.end();
    await new Promise((r) => child.once('exit', r));
    await pki.release();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    name: 'OPC UA source: 1,000 monitored items',
    rows,
    notes: [
      `A node-opcua ${'2.182.2'} server in its own process changes ${ITEMS} Double variables every ${CHANGE_EVERY_MS} ms; the source subscribes with publishingInterval 100 ms, samplingInterval 0 (on change), queueSize 10.`,
      `CPU per notification: this process's user + system time over ${WINDOWS} windows of ${WINDOW_MS / 1000} s (median), divided by the data changes received; it includes node-opcua's decoding (and decryption), the readings built, and nothing else (the readings go to a counter).`,
    ],
  };
}
