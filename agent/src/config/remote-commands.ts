import type { AgentConfig } from './load-config.js';

/**
 * Whether the agent answers remote commands (docs/commands.md). `commands.enabled: auto`, the default, turns them
 * on only where someone had to be trusted on purpose: trusted command-signing keys, or a broker that knows who the
 * agent is (a username or a TLS client certificate), whose ACL then decides who may publish to its command topics.
 * With the anonymous broker of the quick start, any local client could otherwise read `diagnostics` and `status`.
 */
export interface RemoteCommandsDecision {
  enabled: boolean;
  /** Why, in words for the start-up log line and `doctor`. */
  reason: string;
}

/** What turns `auto` on, as the log line and docs say it. */
export const HOW_TO_ENABLE =
  'set commands.trustedKeys, broker.username (with a password) or a TLS client certificate (broker.tls.certFile), or commands.enabled: on (docs/commands.md)';

export function remoteCommandsDecision(config: Pick<AgentConfig, 'commands' | 'broker'>): RemoteCommandsDecision {
  const { commands, broker } = config;
  if (commands.enabled === 'off') return { enabled: false, reason: 'commands.enabled is off' };
  if (commands.enabled === 'on') return { enabled: true, reason: 'commands.enabled is on' };
  const why: string[] = [];
  if (commands.trustedKeys.length) why.push('commands.trustedKeys is set');
  if (broker.username) why.push(`the broker knows this agent as user ${broker.username}`);
  if (broker.tls.certFile) why.push('the broker knows this agent by its TLS client certificate');
  if (why.length) return { enabled: true, reason: why.join('; ') };
  return {
    enabled: false,
    reason: `the broker connection is anonymous and no commands.trustedKeys are set, so any client of the broker could send them; to enable: ${HOW_TO_ENABLE}`,
  };
}
