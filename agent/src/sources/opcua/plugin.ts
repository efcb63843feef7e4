import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { defineSource, probeFail, probeOk, probeWarn, type ProbeCheck } from '../plugin.js';
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
  /** Files only (no connection, no node-opcua): the trust list, the agent's certificate, the password files. */
  async probe(config) {
    const endpoints = config.endpoints.filter((e) => e.enabled);
    if (!endpoints.length) return [];
    const checks: ProbeCheck[] = [];
    const own = path.join(config.pkiDir, 'own', 'certs', 'forewarn.pem');
    checks.push(
      existsSync(own)
        ? probeOk('sources.opcua.pkiDir', `the agent's OPC UA certificate: ${own}`)
        : probeOk('sources.opcua.pkiDir', `the agent's OPC UA certificate is created on first start in ${path.dirname(own)}`),
    );
    const trustedDir = path.join(config.pkiDir, 'trusted', 'certs');
    let trusted = 0;
    try {
      trusted = readdirSync(trustedDir).filter((f) => /\.(pem|der|crt)$/i.test(f)).length;
    } catch {
      // not created yet
    }
    for (const e of endpoints) {
      const name = `sources.opcua.${e.name}`;
      if (e.securityMode !== 'None' && trusted === 0) {
        checks.push(
          probeWarn(
            name,
            `${e.securityMode} needs the server's certificate in ${trustedDir}, which holds none`,
            `start the agent (or forewarn opcua browse ${e.name}) once: the server's certificate lands in ${path.join(config.pkiDir, 'rejected')}; check it and move it to ${trustedDir}`,
          ),
        );
      } else if (e.securityMode === 'None') {
        checks.push(probeWarn(name, `${e.url}: securityMode None, nothing signed or encrypted`, 'use Sign or SignAndEncrypt where the server offers it'));
      } else {
        checks.push(probeOk(name, `${e.url}: ${e.securityMode}, ${trusted} trusted server certificate(s)`));
      }
      const secret = e.identity.type === 'userName' ? e.identity.passwordFile : e.identity.type === 'certificate' ? e.identity.privateKeyFile : '';
      if (secret) {
        try {
          accessSync(secret, constants.R_OK);
        } catch {
          checks.push(probeFail(`${name}.identity`, `${secret} is not readable by this user`, `create it (0600) and let the agent's user read it`));
        }
      } else if (e.identity.type === 'userName' && e.identity.passwordEnv && process.env[e.identity.passwordEnv] === undefined) {
        checks.push(probeWarn(`${name}.identity`, `${e.identity.passwordEnv} is not set here`, 'set it in the service environment'));
      }
    }
    return checks;
  },
});
