import { describe, expect, it } from 'vitest';
import { runCli, startAgent, killAgent } from '../../helpers/agent-process.js';
import { startMosquitto } from '../../helpers/mosquitto.js';
import { signingKey } from '../../helpers/model-fixtures.js';
import { waitFor } from '../../helpers/wait.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';

/** `forewarn command send` against the real agent process and a real mosquitto. */

const cleanup = cleanupAfterEach();

describe('forewarn command send', () => {
  it('pings the running agent, and changes its log level only with a trusted key', async () => {
    const broker = await startMosquitto();
    cleanup.push(() => broker.stop());
    const key = signingKey();
    const agent = startAgent({
      agent: { id: 'e2e-cmd', view: 'off', logLevel: 'debug' },
      broker: { url: broker.url, flushIntervalMs: 100, reconnectMinMs: 100, reconnectMaxMs: 500 },
      sources: { host: { enabled: false }, simulator: { enabled: false } },
      scoring: { enabled: false },
      metrics: { enabled: false },
      commands: { trustedKeys: [key.publicFile] },
    });
    cleanup.push(() => killAgent(agent));
    await waitFor(
      () => agent.logs().some((l) => l.msg === 'subscribed to remote commands'),
      `the command subscription; agent output:\n${agent.output()}`,
      30_000,
    );

    const ping = await runCli(['command', 'send', 'e2e-cmd', 'ping', '--url', broker.url, '--timeout', '20', '--requester', 'test']);
    expect(ping.stderr).toBe('');
    expect(ping.code).toBe(0);
    expect(JSON.parse(ping.stdout)).toMatchObject({ status: 'ok', command: 'ping', agentId: 'e2e-cmd', data: { pong: true } });

    const unsigned = await runCli(['command', 'send', 'e2e-cmd', 'set-log-level', '--args', '{"level":"warn"}', '--url', broker.url, '--timeout', '20']);
    expect(unsigned.code).toBe(1);
    expect(JSON.parse(unsigned.stdout)).toMatchObject({ status: 'error', error: { code: 'FW_ERR_COMMAND_UNAUTHORIZED' } });

    const signed = await runCli([
      'command',
      'send',
      'e2e-cmd',
      'set-log-level',
      '--args',
      '{"level":"warn"}',
      '--key',
      key.privateFile,
      '--url',
      broker.url,
      '--timeout',
      '20',
    ]);
    expect(signed.code).toBe(0);
    expect(JSON.parse(signed.stdout)).toMatchObject({ status: 'ok', data: { level: 'warn', previous: 'debug' } });
    await waitFor(() => agent.logs().find((l) => l.msg === 'log level changed by a remote command' && l.previous === 'debug'), 'the log line');

    const usage = await runCli(['command', 'send', 'e2e-cmd']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('FW_ERR_USAGE');
    expect(agent.proc.exitCode).toBeNull();
  }, 60_000);
});
