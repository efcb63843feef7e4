import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../../agent/src/config/load-config.js';
import { isForewarnError } from '../../../../agent/src/core/errors.js';

/** The `sources.opcua` section as `forewarn config check` and the agent see it: schema, defaults, cross-field rules. */
function problems(yaml: string): readonly string[] {
  try {
    buildConfig(yaml, {});
    return [];
  } catch (err) {
    if (isForewarnError(err, 'FW_ERR_CONFIG_INVALID')) return err.details;
    throw err;
  }
}

const endpoint = (extra: string) =>
  `storage:\n  dir: /tmp/fw-opcua-cfg\nsources:\n  opcua:\n    endpoints:\n      - name: plc\n        url: opc.tcp://10.0.0.5:4840\n${extra}        nodes:\n          - { nodeId: 'ns=2;s=T', asset: press, signal: t }\n`;

describe('sources.opcua configuration', () => {
  it('defaults: secure (SignAndEncrypt, Basic256Sha256, anonymous), the PKI under storage.dir, nothing configured means no source', () => {
    const cfg = buildConfig(endpoint(''), {});
    const e = cfg.sources.opcua.endpoints[0]!;
    expect(e).toMatchObject({
      securityMode: 'SignAndEncrypt',
      securityPolicy: 'Basic256Sha256',
      publishingIntervalMs: 1000,
      samplingIntervalMs: 1000,
      queueSize: 10,
    });
    expect(e.identity.type).toBe('anonymous');
    expect(cfg.sources.opcua.pkiDir).toBe(path.join('/tmp/fw-opcua-cfg', 'opcua-pki'));
    expect(buildConfig(null, {}).sources.opcua.endpoints).toEqual([]);
  });

  it('cross-field rules come back as `path: message`', () => {
    expect(problems(endpoint('        securityMode: None\n'))).toEqual([
      'sources.opcua.endpoints.0.securityPolicy: securityMode None needs securityPolicy None',
    ]);
    expect(
      problems(
        endpoint('        securityMode: None\n        securityPolicy: None\n        identity: { type: userName, userName: op, passwordFile: /run/pw }\n'),
      ),
    ).toEqual(['sources.opcua.endpoints.0.identity.type: a password needs securityMode Sign or SignAndEncrypt']);
    expect(problems(endpoint('        identity: { type: userName, userName: op }\n'))).toEqual([
      'sources.opcua.endpoints.0.identity.passwordFile: userName needs passwordFile or passwordEnv',
    ]);
    expect(problems(endpoint('        identity: { type: certificate }\n'))).toEqual([
      'sources.opcua.endpoints.0.identity.certificateFile: identity type certificate needs certificateFile and privateKeyFile',
    ]);
    expect(problems(endpoint('        reconnectMinMs: 5000\n        reconnectMaxMs: 1000\n'))).toEqual([
      'sources.opcua.endpoints.0.reconnectMaxMs: must be at least reconnectMinMs',
    ]);
  });

  it('the schema refuses what is not OPC UA: a URL of another scheme, an unknown security mode', () => {
    expect(problems(endpoint('').replace('opc.tcp://', 'http://')).join('\n')).toContain('sources.opcua.endpoints.0.url');
    expect(problems(endpoint('        securityMode: Encrypt\n')).join('\n')).toContain('sources.opcua.endpoints.0.securityMode');
  });
});
