import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../../agent/src/config/load-config.js';
import { remoteCommandsDecision } from '../../../agent/src/config/remote-commands.js';
import { checkRemoteCommands } from '../../../agent/src/cli/doctor.js';
import { signingKey } from '../../helpers/model-fixtures.js';

/** The secure default of remote commands (config/remote-commands.ts): on only where someone was trusted on purpose. */

describe('remote commands: commands.enabled', () => {
  it('auto: off with the anonymous broker of the quick start, and the reason says how to turn them on', () => {
    const d = remoteCommandsDecision(buildConfig(null, {}));
    expect(d.enabled).toBe(false);
    expect(d.reason).toMatch(/^the broker connection is anonymous and no commands\.trustedKeys are set/);
    expect(d.reason).toContain('commands.enabled: on (docs/commands.md)');
  });

  it('auto: on with trusted keys, a broker username or a TLS client certificate', () => {
    const key = signingKey();
    expect(remoteCommandsDecision(buildConfig(`commands:\n  trustedKeys: [${key.publicFile}]\n`, {}))).toEqual({
      enabled: true,
      reason: 'commands.trustedKeys is set',
    });
    expect(remoteCommandsDecision(buildConfig(null, { FOREWARN_BROKER_USERNAME: 'edge-1', FOREWARN_BROKER_PASSWORD: 'x' }))).toEqual({
      enabled: true,
      reason: 'the broker knows this agent as user edge-1',
    });
    // The TLS files are checked by doctor, not at load: naming them is enough here.
    const tls = buildConfig(null, { FOREWARN_BROKER_TLS_CERT_FILE: '/etc/forewarn/agent.pem', FOREWARN_BROKER_TLS_KEY_FILE: '/etc/forewarn/agent.key' });
    expect(remoteCommandsDecision(tls)).toEqual({ enabled: true, reason: 'the broker knows this agent by its TLS client certificate' });
  });

  it('on and off (and true/false) decide alone', () => {
    expect(remoteCommandsDecision(buildConfig('commands:\n  enabled: true\n', {})).enabled).toBe(true);
    expect(remoteCommandsDecision(buildConfig(null, { FOREWARN_COMMANDS_ENABLED: 'off', FOREWARN_BROKER_USERNAME: 'edge-1' })).enabled).toBe(false);
  });

  it('doctor: ok when off or known to the broker, a warning when on over an anonymous connection', () => {
    expect(checkRemoteCommands(buildConfig(null, {}))).toMatchObject({ name: 'commands', status: 'ok', message: expect.stringMatching(/^off: /) as unknown });
    const forced = checkRemoteCommands(buildConfig('commands:\n  enabled: on\n', {}));
    expect(forced).toMatchObject({ status: 'warn', message: expect.stringContaining('any client of the broker can read `diagnostics`') as unknown });
    const keyOnly = checkRemoteCommands(buildConfig(`commands:\n  trustedKeys: [${signingKey().publicFile}]\n`, {}));
    expect(keyOnly).toMatchObject({ status: 'warn', message: expect.stringMatching(/^on \(commands\.trustedKeys is set\) over an anonymous/) as unknown });
    expect(checkRemoteCommands(buildConfig(null, { FOREWARN_BROKER_USERNAME: 'edge-1' }))).toMatchObject({
      status: 'ok',
      message: 'on: the broker knows this agent as user edge-1',
    });
  });
});
