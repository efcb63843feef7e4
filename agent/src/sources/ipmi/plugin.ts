import { accessSync, constants, existsSync } from 'node:fs';
import { DAY_MS, TIMEOUT_MAX_MS, schemaObject } from '../../core/schema-node.js';
import { defineSource, probeOk, probeWarn } from '../plugin.js';
import { probeTool } from '../probe-tool.js';
import { IpmiSource, type IpmiSourceConfig } from './ipmi-source.js';

/** The BMC through ipmitool: sensors and new SEL entries, filed under the agent's own asset. */
export const ipmiPlugin = defineSource<'ipmi', Pick<IpmiSourceConfig, 'enabled' | 'intervalMs' | 'timeoutMs' | 'binary' | 'sel'>>({
  key: 'ipmi',
  schema: schemaObject('The BMC through ipmitool: sensor readings and new System Event Log entries', {
    enabled: { type: 'boolean', description: 'Read the BMC where one is present (no /dev/ipmi0 or ipmitool: said once, then idle).', default: true },
    intervalMs: { type: 'integer', description: 'How often sensors and the SEL are read.', default: 60000, minimum: 1000, maximum: DAY_MS },
    timeoutMs: { type: 'integer', description: 'Limit for one ipmitool run; busy BMCs are slow.', default: 30000, minimum: 100, maximum: TIMEOUT_MAX_MS },
    binary: { type: 'string', description: 'The ipmitool executable.', default: 'ipmitool', minLength: 1 },
    sel: { type: 'boolean', description: 'Turn new SEL entries into events (and alerts).', default: true },
  }),
  create: (config, { sink, events, log, agentId }) => (config.enabled ? [new IpmiSource({ ...config, asset: agentId }, sink, events, log)] : []),
  async probe(config) {
    if (!config.enabled) return [];
    const devices = ['/dev/ipmi0', '/dev/ipmi/0', '/dev/ipmidev/0'];
    const dev = devices.find((d) => existsSync(d));
    if (!dev)
      return [probeWarn('sources.ipmi', `no IPMI device (${devices.join(', ')})`, 'no BMC here, or load ipmi_si and ipmi_devintf; or disable sources.ipmi')];
    const t = await probeTool('sources.ipmi', config.binary, 'ipmitool', ['-V'], 'ipmitool');
    if (!t.found) return [t.check];
    try {
      accessSync(dev, constants.R_OK | constants.W_OK);
      return [probeOk('sources.ipmi', `${config.binary} runs; ${dev} read-write`)];
    } catch {
      return [
        probeWarn('sources.ipmi', `${dev} is not read-write for this user`, `run the agent as root, or give its user access to ${dev} (udev rule or group)`),
      ];
    }
  },
});
