import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { describeError } from '../../core/errors.js';
import { DAY_MS, TIMEOUT_MAX_MS, schemaObject } from '../../core/schema-node.js';
import { defineSource, probeFail, probeOk, probeWarn, type ProbeCheck } from '../plugin.js';
import { PROBE_TOOL_TIMEOUT_MS, probeTool } from '../probe-tool.js';
import { runTool } from '../run-tool.js';
import { NvidiaGpuSource, type NvidiaGpuConfig } from './nvidia-gpu-source.js';

/** NVIDIA GPUs through nvidia-smi, and Xid events from the kernel log. */
export const gpuPlugin = defineSource<'gpu', NvidiaGpuConfig>({
  key: 'gpu',
  schema: schemaObject(
    'NVIDIA GPUs through nvidia-smi: one long-lived query process for the fast fields, slow counters now and then, Xid events from the kernel log',
    {
      enabled: { type: 'boolean', description: 'Read NVIDIA GPUs. Without nvidia-smi on the host the source says so once and stays idle.', default: true },
      intervalMs: {
        type: 'integer',
        description: 'Fast fields (utilisation, memory, temperatures, power, clocks, throttle reasons, ECC).',
        default: 5000,
        minimum: 100,
        maximum: DAY_MS,
      },
      slowIntervalMs: {
        type: 'integer',
        description: 'Slow counters: remapped rows, PCIe replays (`nvidia-smi -q`), NVLink errors.',
        default: 60000,
        minimum: 1000,
        maximum: DAY_MS,
      },
      timeoutMs: { type: 'integer', description: 'Limit for each one-shot nvidia-smi command.', default: 15000, minimum: 100, maximum: TIMEOUT_MAX_MS },
      binary: { type: 'string', description: 'The nvidia-smi executable: a name on PATH or a path.', default: 'nvidia-smi', minLength: 1 },
      xid: { type: 'boolean', description: 'Follow the kernel log for Xid events.', default: true },
      kernelLog: {
        type: 'string',
        description: 'Where Xid events are read: `/dev/kmsg`, `journalctl -k -f`, the first that works (`auto`), or `off`.',
        enum: ['auto', 'kmsg', 'journalctl', 'off'],
        default: 'auto',
      },
    },
  ),
  create: (config, { sink, events, log }) => (config.enabled ? [new NvidiaGpuSource(config, sink, events, log)] : []),
  async probe(config) {
    if (!config.enabled) return [];
    const out: ProbeCheck[] = [];
    const t = await probeTool('sources.gpu', config.binary, 'nvidia-smi', ['-L'], 'the NVIDIA driver (nvidia-smi)');
    if (t.found && t.code !== null) {
      const gpus = t.stdout.split('\n').filter((l) => l.startsWith('GPU ')).length;
      out.push(
        t.code === 0
          ? probeOk('sources.gpu', `${config.binary}: ${gpus} GPU(s)`)
          : probeWarn(
              'sources.gpu',
              `${config.binary} -L exited ${t.code}: ${(t.stderr || t.stdout).trim().split('\n')[0] ?? ''}`,
              'check the NVIDIA driver (nvidia-smi must work for this user)',
            ),
      );
    } else out.push(t.check);
    if (config.xid && config.kernelLog !== 'off') out.push(await probeKernelLog(config.kernelLog));
    return out;
  },
});

async function probeKernelLog(mode: 'auto' | 'kmsg' | 'journalctl'): Promise<ProbeCheck> {
  const name = 'sources.gpu.kernelLog';
  if (mode !== 'journalctl') {
    try {
      const fh = await open('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
      await fh.close();
      return probeOk(name, '/dev/kmsg readable (Xid events)');
    } catch (err) {
      if (mode === 'kmsg')
        return probeFail(
          name,
          `cannot open /dev/kmsg: ${describeError(err)}`,
          'run as root or give CAP_SYSLOG (kernel.dmesg_restrict), or set sources.gpu.kernelLog: journalctl',
        );
    }
  }
  const res = await runTool('journalctl', ['-k', '-n', '1', '--no-pager', '-q'], { timeoutMs: PROBE_TOOL_TIMEOUT_MS });
  if (!res.spawnError && res.code === 0) return probeOk(name, 'journalctl -k usable (Xid events)');
  return probeWarn(
    name,
    `neither /dev/kmsg nor journalctl -k is usable${res.spawnError ? ` (journalctl: ${res.spawnError.code})` : res.stderr ? ` (journalctl: ${res.stderr.trim().split('\n')[0]})` : ''}: Xid events will be missed`,
    "add the agent's user to the systemd-journal or adm group, or give it CAP_SYSLOG; or set sources.gpu.xid: false",
  );
}
