import { defineSource } from '../plugin.js';
import { OPCUA_SCHEMA, resolveOpcuaConfig, type OpcuaConfig } from './opcua-config.js';
import { OpcuaPki } from './opcua-pki.js';
import { OpcuaSource } from './opcua-source.js';

/** OPC UA servers, one source per configured endpoint; they share the agent's one certificate store. */
export const opcuaPlugin = defineSource<'opcua', OpcuaConfig>({
  key: 'opcua',
  schema: OPCUA_SCHEMA,
  resolve: (config, agent) => resolveOpcuaConfig(config, agent.storageDir),
  create(config, { sink, log, agentId }) {
    const endpoints = config.endpoints.filter((e) => e.enabled);
    if (!endpoints.length) return [];
    const pki = new OpcuaPki(config.pkiDir, agentId);
    return endpoints.map((e) => new OpcuaSource(e, pki, sink, log));
  },
});
