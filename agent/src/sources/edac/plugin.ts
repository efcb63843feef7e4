import { readdirSync } from 'node:fs';
import path from 'node:path';
import { DAY_MS, TIMEOUT_MAX_MS, schemaObject } from '../../core/schema-node.js';
import { defineSource, probeOk, probeWarn } from '../plugin.js';
import { EdacSource, type EdacSourceConfig } from './edac-source.js';

/** Memory ECC counters from EDAC in sysfs, filed under the agent's own asset. */
export const edacPlugin = defineSource<'edac', Omit<EdacSourceConfig, 'asset'>>({
  key: 'edac',
  schema: schemaObject('Memory ECC counters from EDAC in sysfs', {
    enabled: { type: 'boolean', description: 'Read EDAC counters (no EDAC driver: said once, then idle).', default: true },
    intervalMs: { type: 'integer', description: 'How often the counters are read.', default: 60000, minimum: 250, maximum: DAY_MS },
    timeoutMs: { type: 'integer', description: 'Limit for one pass over the tree.', default: 5000, minimum: 100, maximum: TIMEOUT_MAX_MS },
    sysRoot: { type: 'string', description: 'Where sysfs is mounted (e.g. `/host/sys` in a container).', default: '/sys', minLength: 1 },
  }),
  create: (config, { sink, log, agentId }) => (config.enabled ? [new EdacSource({ ...config, asset: agentId }, sink, log)] : []),
  async probe(config) {
    if (!config.enabled) return [];
    const dir = path.join(config.sysRoot, 'devices/system/edac/mc');
    let mcs: string[] = [];
    try {
      mcs = readdirSync(dir).filter((n) => /^mc\d+$/.test(n));
    } catch {
      // absent: no EDAC driver
    }
    return [
      mcs.length
        ? probeOk('sources.edac', `${mcs.length} EDAC memory controller(s) under ${dir}`)
        : probeWarn(
            'sources.edac',
            `no EDAC memory controller under ${dir}`,
            'load the EDAC driver for this platform (e.g. modprobe skx_edac / amd64_edac), or disable sources.edac',
          ),
    ];
  },
});
