import { describeError } from '../../core/errors.js';
import { DAY_MS, TIMEOUT_MAX_MS, schemaObject } from '../../core/schema-node.js';
import { defineSource, probeOk, probeWarn } from '../plugin.js';
import { PcieAerSource, readAer, type PcieAerSourceConfig } from './pcie-aer-source.js';

/** PCIe Advanced Error Reporting counters from sysfs, filed under the agent's own asset. */
export const pcieAerPlugin = defineSource<'pcieAer', Omit<PcieAerSourceConfig, 'asset'>>({
  key: 'pcieAer',
  schema: schemaObject('PCIe Advanced Error Reporting counters from sysfs', {
    enabled: { type: 'boolean', description: 'Read PCIe AER counters.', default: true },
    intervalMs: { type: 'integer', description: 'How often the counters are read.', default: 60000, minimum: 250, maximum: DAY_MS },
    timeoutMs: { type: 'integer', description: 'Limit for one pass over the devices.', default: 5000, minimum: 100, maximum: TIMEOUT_MAX_MS },
    sysRoot: { type: 'string', description: 'Where sysfs is mounted.', default: '/sys', minLength: 1 },
  }),
  create: (config, { sink, log, agentId }) => (config.enabled ? [new PcieAerSource({ ...config, asset: agentId }, sink, log)] : []),
  async probe(config) {
    if (!config.enabled) return [];
    try {
      const sample = await readAer(config.sysRoot);
      return [probeOk('sources.pcieAer', `AER counters readable on ${sample.devices.length} device(s)`)];
    } catch (err) {
      return [probeWarn('sources.pcieAer', describeError(err), 'the kernel needs CONFIG_PCIEAER and firmware-first AER off; or disable sources.pcieAer')];
    }
  },
});
