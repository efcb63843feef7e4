import { schemaObject } from '../../core/schema-node.js';
import { defineSource } from '../plugin.js';
import { SimulatedMillModbus } from './simulated-mill-modbus.js';
import { SimulatorSource, type SimulatorConfig } from './simulator-source.js';

/** The built-in simulated milling machine, served over Modbus TCP on loopback (or handed over directly). */
export const simulatorPlugin = defineSource<'simulator', SimulatorConfig>({
  key: 'simulator',
  schema: schemaObject('The built-in simulated milling machine (AI4I 2020 rules), so there is something to score on any host', {
    enabled: { type: 'boolean', description: 'Run the simulated machine.', default: true },
    asset: { type: 'string', description: 'Asset name of the simulated machine.', default: 'sim-mill-1', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$' },
    seed: {
      type: 'integer',
      description: 'Random seed; the same seed replays the same machine.',
      default: 1,
      // Beyond 2^53 a number is no longer an exact integer: two different seeds would be the same.
      minimum: -Number.MAX_SAFE_INTEGER,
      maximum: Number.MAX_SAFE_INTEGER,
    },
    processSeconds: { type: 'number', description: 'Simulated seconds one machining process takes.', default: 60, minimum: 1, maximum: 86400 },
    speedup: {
      type: 'number',
      description: 'How much faster than real time the machine runs. 60 means one process a second with the default `processSeconds`.',
      default: 60,
      minimum: 0.01,
      maximum: 1000000,
    },
    transport: {
      type: 'string',
      description:
        '`modbus`: the machine serves its registers over Modbus TCP on loopback and the Modbus source polls them (the path a real PLC takes); `direct`: readings are handed straight to the pipeline.',
      enum: ['modbus', 'direct'],
      default: 'modbus',
    },
    modbusPort: { type: 'integer', description: 'Loopback port of the simulated Modbus server; 0 picks a free one.', default: 0, minimum: 0, maximum: 65535 },
  }),
  create(config, { sink, log }) {
    if (!config.enabled) return [];
    return [config.transport === 'modbus' ? new SimulatedMillModbus(config, sink, log) : new SimulatorSource(config, sink, log)];
  },
});
