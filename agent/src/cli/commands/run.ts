import { redactConfig, type LoadedConfig } from '../../config/load-config.js';
import { describeError, isForewarnError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { AgentRunner } from '../../pipeline/agent-runner.js';
import { runOnce } from '../run-once.js';
import { SdNotify } from '../../service/sd-notify.js';
import { LiveView } from '../../view/live-view.js';
import { parseCommandArgs, type CliCommand } from '../command.js';
import { effectiveConfig } from '../effective-config.js';
import { AGENT_VERSION } from './version.js';
import { assertAlertConfig } from '../../health/alert-lifecycle.js';

/** `forewarn run`: the daemon in the foreground (also what `forewarn` with no command does). */

/** How long a graceful stop may take before the agent exits without finishing it. */
const STOP_TIMEOUT_MS = 15_000;

export const run: CliCommand = {
  name: 'run',
  synopsis: 'forewarn run [--config FILE] [--once]',
  summary: 'run the agent in the foreground',
  usage: `forewarn run [--config FILE] [--once]

Runs the agent in the foreground. Speaks the systemd notify protocol when NOTIFY_SOCKET is set (docs/service.md).

Signals:
  SIGINT, SIGTERM   stop gracefully (what is queued is committed, the outbox drains for up to 2 s); a second
                    signal does not cut the stop short; a third one, or ${STOP_TIMEOUT_MS / 1000} s, exits at once (code 130, or 1)
  SIGHUP            reload the configuration file (validated first; a bad file keeps the running configuration
                    and logs why); storage.* and agent.view need a restart

Under a supervisor that stops with SIGTERM, run \`node <install dir>/dist/agent/src/cli.js run\`, not
\`npx forewarn run\`: npm does not pass SIGTERM on, and the agent would be left running (docs/service.md).

  -c, --config FILE   the configuration file (or FOREWARN_CONFIG); every option can also be set by an
                      environment variable (docs/configuration.md)
  --once              collect one round from every enabled source, score it, print readings, risk scores and
                      their drivers (JSON lines; a table on a terminal) and exit; touches neither the broker nor
                      the database`,
  async run(argv) {
    const { values } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' }, once: { type: 'boolean', default: false } }, 0);
    const loaded = effectiveConfig(values.config);
    // The alert rules named in the configuration, checked against the catalogue before anything starts.
    assertAlertConfig(loaded.config.alerts, loaded.file ?? '(embedded defaults)');
    if (values.once) return runOnce(loaded.config);
    return runAgent(loaded);
  },
};

async function runAgent(loaded: LoadedConfig): Promise<number> {
  const { config } = loaded;
  // Everything the agent creates (database, WAL, logs) is private to its user.
  process.umask(0o077);
  const tty = process.stdout.isTTY === true;
  const view = config.agent.view === 'on' || (config.agent.view === 'auto' && tty) ? new LiveView() : null;
  const log = createLogger({ level: config.agent.logLevel, pretty: tty || view !== null, prettyOut: view?.print });
  // One line at info; the resolved configuration (171 lines) only at debug, or with `forewarn config show`.
  log.info({ file: loaded.file, version: AGENT_VERSION, agentId: config.agent.id }, 'configuration loaded');
  log.debug({ config: redactConfig(config) }, 'resolved configuration');
  // systemd Type=notify (docs/service.md): READY=1, watchdog pings, RELOADING=1, STOPPING=1. Does nothing without NOTIFY_SOCKET.
  const notify = new SdNotify({ log });
  // A SIGHUP before the pipeline exists must not kill the process (Node's default for SIGHUP).
  let onHangup = (): void => log.info({ signal: 'SIGHUP' }, 'not started yet; reload ignored');
  process.on('SIGHUP', () => onHangup());

  let runner: AgentRunner;
  // Set by the first SIGINT/SIGTERM: a reload that finishes during the stop must not bring the live view back.
  let stopRequested = false;
  try {
    runner = new AgentRunner(loaded, log, AGENT_VERSION, {
      onReloading: () => void notify.reloading('reloading the configuration'),
      onReloaded: (agent) => {
        if (stopRequested) return;
        if (view) {
          view.detach();
          view.attach(agent);
        }
        void notify.ready(`running: ${agent.sources.length} source(s)`);
      },
    });
  } catch (err) {
    log.fatal({ err: describeError(err), code: isForewarnError(err) ? err.code : undefined }, 'cannot start');
    return 1;
  }
  process.on('unhandledRejection', (reason) => log.error({ err: describeError(reason) }, 'unhandled rejection'));

  return new Promise<number>((resolve) => {
    let signals = 0;
    // Supervisors and timeout(1) may send SIGTERM twice in quick succession: the second must not cut the stop
    // short (the queued records would not be committed). A third signal, or the timeout, exits at once.
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 2) {
        log.warn({ signal }, 'already stopping; a third signal exits at once without finishing the stop');
        return;
      }
      if (signals > 2) {
        log.warn({ signal, signals }, 'third signal; exiting at once without finishing the stop');
        process.exit(130);
      }
      log.info({ signal, timeoutMs: STOP_TIMEOUT_MS }, 'stopping');
      stopRequested = true;
      onHangup = () => log.info({ signal: 'SIGHUP' }, 'stopping; reload ignored');
      view?.detach();
      const guard = setTimeout(() => {
        log.error({ timeoutMs: STOP_TIMEOUT_MS }, 'stop timeout reached; exiting without finishing the stop');
        resolve(1);
      }, STOP_TIMEOUT_MS);
      guard.unref();
      Promise.all([runner.stop(), notify.stopping(`stopping (${signal})`)])
        .then(() => resolve(0))
        .catch((err) => {
          log.error({ err: describeError(err) }, 'stop failed');
          resolve(1);
        })
        .finally(() => {
          clearTimeout(guard);
          notify.close();
        });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    runner
      .start()
      .then(() => {
        if (signals) return;
        onHangup = () => runner.reloadOnSignal();
        view?.attach(runner.agent);
        void notify.ready(`running: ${runner.agent.sources.length} source(s)`);
      })
      .catch((err) => {
        log.fatal({ err: describeError(err) }, 'start failed');
        notify.close();
        resolve(1);
      });
  });
}
