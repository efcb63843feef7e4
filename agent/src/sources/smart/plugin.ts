import { DAY_MS, TIMEOUT_MAX_MS, schemaObject } from '../../core/schema-node.js';
import { defineSource, probeOk, probeWarn } from '../plugin.js';
import { probeTool } from '../probe-tool.js';
import { SmartSource, type SmartSourceConfig } from './smart-source.js';

/** Disk health through smartctl (ATA and NVMe); every disk is its own asset. */
export const smartPlugin = defineSource<'smart', Omit<SmartSourceConfig, 'asset'>>({
  key: 'smart',
  schema: schemaObject('Disk health through smartctl (ATA and NVMe), on a slow schedule', {
    enabled: { type: 'boolean', description: 'Read SMART. Needs smartctl and CAP_SYS_RAWIO (or root); without them the source says so once.', default: true },
    intervalMs: {
      type: 'integer',
      description: 'How often every disk is read. Sleeping disks are not woken.',
      default: 600000,
      minimum: 1000,
      maximum: 7 * DAY_MS,
    },
    timeoutMs: { type: 'integer', description: 'Limit for one smartctl run.', default: 30000, minimum: 100, maximum: TIMEOUT_MAX_MS },
    binary: { type: 'string', description: 'The smartctl executable.', default: 'smartctl', minLength: 1 },
    devices: {
      type: 'array',
      description: 'Disks to read instead of scanning, e.g. `/dev/sda` or `/dev/sda -d sat`. Empty: discover with `smartctl --scan-open`.',
      default: [],
      items: { type: 'string', description: 'A device, optionally with its type.', minLength: 1 },
    },
    rescanIntervalMs: { type: 'integer', description: 'How often the disk list is discovered again.', default: 3600000, minimum: 1000, maximum: 7 * DAY_MS },
  }),
  create: (config, { sink, log }) => (config.enabled ? [new SmartSource(config, sink, log)] : []),
  async probe(config) {
    if (!config.enabled) return [];
    const t = await probeTool('sources.smart', config.binary, 'smartctl', ['--scan-open'], 'smartmontools 7.0 or later');
    if (!t.found || t.code === null) return [t.check];
    const lines = t.stdout.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    const denied = t.stdout.split('\n').filter((l) => /permission denied|operation not permitted/i.test(l));
    if (config.devices.length) return [probeOk('sources.smart', `${config.binary} runs; ${config.devices.length} configured device(s)`)];
    if (denied.length) {
      return [
        probeWarn(
          'sources.smart',
          `${config.binary} cannot open ${denied.length} disk(s) as this user (permission denied)`,
          'run the agent as root, or give it CAP_SYS_RAWIO and read access to the disk devices (docs/configuration.md, sources.smart)',
        ),
      ];
    }
    if (!lines.length)
      return [
        probeWarn(
          'sources.smart',
          `${config.binary} --scan-open found no disks`,
          'no disks visible to smartctl here; list them in sources.smart.devices or disable the source',
        ),
      ];
    return [probeOk('sources.smart', `${config.binary} sees ${lines.length} disk(s)`)];
  },
});
