import { redactConfig, type LoadedConfig } from '../../config/load-config.js';
import { describeError, isForewarnError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { Agent } from '../../pipeline/agent.js';
import { SdNotify } from '../../service/sd-notify.js';
import { LiveView } from '../../view/live-view.js';
import { parseCommandArgs, type CliCommand } from '../command.js';
import { effectiveConfig } from '../effective-config.js';
import { AGENT_VERSION } from './version.js';
import { assertAlertConfig } from '../../health/alert-lifecycle.js';

/** `forewarn run`: the daemon in the foreground (also what `forewarn` with no command does). */

export const run: CliCommand = {
  name: 'run',
  synopsis: 'forewarn run [--config FILE]',
  summary: 'run the agent in the foreground',
  usage: `forewarn run [--config FILE]

Runs the agent in the foreground until SIGINT or SIGTERM (a second signal exits at once, with code 130). Speaks
the systemd notify protocol when NOTIFY_SOCKET is set (docs/service.md).

  -c, --config FILE   the configuration file (or FOREWARN_CONFIG); every option can also be set by an
                      environment variable (docs/configuration.md)`,
  async run(argv) {
    const { values } = parseCommandArgs(this, argv, { config: { type: 'string', short: 'c' } }, 0);
    const loaded = effectiveConfig(values.config);
    // The alert rules named in the configuration, checked against the catalogue before anything starts.
    assertAlertConfig(loaded.config.alerts, loaded.file ?? '(embedded defaults)');
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
  log.info({ config: redactConfig(config), file: loaded.file, version: AGENT_VERSION }, 'configuration loaded');
  // systemd Type=notify (docs/service.md): READY=1, watchdog pings, STOPPING=1. Does nothing without NOTIFY_SOCKET.
  const notify = new SdNotify({ log });

  let agent: Agent;
  try {
    agent = new Agent(config, log, AGENT_VERSION, { configFile: loaded.file });
  } catch (err) {
    log.fatal({ err: describeError(err), code: isForewarnError(err) ? err.code : undefined }, 'cannot start');
    return 1;
  }
  process.on('unhandledRejection', (reason) => log.error({ err: describeError(reason) }, 'unhandled rejection'));

  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, 'second signal; exiting at once');
        process.exit(130);
      }
      log.info({ signal }, 'stopping');
      view?.detach();
      const guard = setTimeout(() => {
        log.error('stop took too long; exiting');
        resolve(1);
      }, 15_000);
      guard.unref();
      Promise.all([agent.stop(), notify.stopping(`stopping (${signal})`)])
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
    agent
      .start()
      .then(() => {
        view?.attach(agent);
        void notify.ready(`running: ${agent.sources.length} source(s)`);
      })
      .catch((err) => {
        log.fatal({ err: describeError(err) }, 'start failed');
        notify.close();
        resolve(1);
      });
  });
}
