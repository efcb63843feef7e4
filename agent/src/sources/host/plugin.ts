import { DAY_MS, schemaObject } from '../../core/schema-node.js';
import { defineSource } from '../plugin.js';
import { HostSource, type HostSourceConfig } from './host-source.js';

/** Host telemetry from /proc and /sys (README.md lists the metrics). */
export const hostPlugin = defineSource<'host', HostSourceConfig>({
  key: 'host',
  schema: schemaObject('Host telemetry from /proc and /sys (no processes spawned per sample)', {
    enabled: { type: 'boolean', description: 'Collect host telemetry.', default: true },
    intervalMs: { type: 'integer', description: 'Sampling interval.', default: 5000, minimum: 250, maximum: DAY_MS },
    asset: { type: 'string', description: 'Asset name for host readings. Empty means the agent id.', default: '' },
  }),
  resolve(config, agent) {
    if (!config.asset) config.asset = agent.id;
  },
  create: (config, { sink, log }) => (config.enabled ? [new HostSource(config, sink, log)] : []),
});
