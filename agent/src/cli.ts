#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { assessConfigStorage, loadConfig, redactConfig, type LoadedConfig } from './config/load-config.js';
import { PACKAGE_ROOT } from './core/package-root.js';
import { ForewarnError, describeError, isForewarnError } from './core/errors.js';
import { createLogger } from './core/logger.js';
import { Agent } from './pipeline/agent.js';
import { LiveView } from './view/live-view.js';
import { formatStatus, readStatus } from './cli/status-report.js';
import { evaluateModel } from './scoring/evaluate-model.js';
import { evaluateRul } from './scoring/evaluate-rul.js';
import { profileModel } from './scoring/profile-model.js';
import { runSubscribeCommand } from './subscriber/subscribe-command.js';
import { MODEL_COMMANDS, runModelCommand } from './cli/model-commands.js';
import { formatDoctor, runDoctor } from './cli/doctor.js';
import { SdNotify } from './service/sd-notify.js';
import { runCommandCli } from './commands/command-client.js';

const USAGE = `forewarn — predictive-maintenance edge agent

Usage:
  forewarn run [--config FILE]                     run the agent in the foreground
  forewarn status [--config FILE] [--json]         what is buffered, what was sent, the latest risk per asset
  forewarn config check FILE [--json]              validate a configuration file without running
  forewarn model eval NAME --data FILE.csv [--json] [--threshold X] [--models-dir DIR]
                                                   score a labelled CSV and print the metrics
  forewarn model profile NAME --data TRAIN [--exclude HOLDOUT.txt] [--write] [--json]
                                                   summarise a model's training data per input into its
                                                   manifest: the reference for drift detection
  forewarn model eval NAME --data TEST.txt --rul RUL.txt [--json]
                                                   RMSE and NASA score of a remaining-useful-life model on
                                                   a C-MAPSS-format test file and its true RULs
  forewarn model keygen|bundle|install|list|rollback …
                                                   signed model bundles: install, shadow-score, promote,
                                                   roll back (docs/model-updates.md; \`forewarn model
                                                   install --help\` for every option)
  forewarn subscribe [--url URL] [--db FILE] [--group NAME] [--report [--json]] …
                                                   the reference central subscriber: deduplicates,
                                                   detects gaps, writes SQLite (docs/subscriber.md;
                                                   \`forewarn subscribe --help\` for every option)
  forewarn command send AGENT COMMAND [--args JSON] [--key KEY.pem] [--url URL] [--timeout S]
                                                   send a remote command to an agent over MQTT and print
                                                   its reply (docs/commands.md)
  forewarn doctor [--config FILE] [--json]         check the configuration, broker, tools, permissions,
                                                   models and disk (docs/observability.md); exit 1 on a failure
  forewarn version

The configuration file may also be named by FOREWARN_CONFIG; every option can be set by an environment
variable (docs/configuration.md). Exit codes: 0 ok, 1 failure, 2 invalid configuration or usage.`;

export const AGENT_VERSION: string = (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function fail(err: unknown): number {
  if (isForewarnError(err)) {
    process.stderr.write(`forewarn: ${err.message} [${err.code}]\n`);
    for (const d of err.details) process.stderr.write(`  ${d}\n`);
    return err.code === 'FW_ERR_CONFIG_INVALID' || err.code === 'FW_ERR_CONFIG_READ' || err.code === 'FW_ERR_USAGE' || err.code === 'FW_ERR_SECRET_READ' ? 2 : 1;
  }
  process.stderr.write(`forewarn: ${describeError(err)}\n`);
  // node:util parseArgs errors: an unknown option or a missing value is a usage error.
  return String((err as { code?: unknown }).code ?? '').startsWith('ERR_PARSE_ARGS') ? 2 : 1;
}

function usage(message: string): never {
  throw new ForewarnError('FW_ERR_USAGE', `${message}\n\n${USAGE}`);
}

async function run(loaded: LoadedConfig): Promise<number> {
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

export async function main(argv: string[]): Promise<number> {
  // The subscriber has its own options and its own signal handling.
  if (argv[0] === 'subscribe') {
    return runSubscribeCommand(argv.slice(1), createLogger({ level: process.env.FOREWARN_LOG_LEVEL ?? 'info', pretty: process.stdout.isTTY === true }));
  }
  // Remote commands to an agent over MQTT (docs/commands.md).
  if (argv[0] === 'command') return runCommandCli(argv.slice(1));
  // Model updates have their own options (docs/model-updates.md).
  if (argv[0] === 'model' && MODEL_COMMANDS.has(argv[1] ?? '')) return runModelCommand(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean', default: false },
      data: { type: 'string' },
      rul: { type: 'string' },
      threshold: { type: 'string' },
      'models-dir': { type: 'string' },
      exclude: { type: 'string' },
      write: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
  });
  const [command, sub, arg] = positionals;
  if (values.help || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values.version || command === 'version') {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  switch (command ?? 'run') {
    case 'run':
      return run(loadConfig(values.config));
    case 'doctor': {
      const report = await runDoctor(values.config);
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatDoctor(report)}\n`);
      return report.ok ? 0 : 1;
    }
    case 'status': {
      const { config } = loadConfig(values.config);
      const report = readStatus(config.storage.dir);
      process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
      return 0;
    }
    case 'config': {
      if (sub !== 'check') usage('unknown config command; expected `config check FILE`');
      const file = arg ?? values.config;
      if (!file) usage('config check needs a FILE');
      const loaded = loadConfig(file, {});
      // Limits this host's disk cannot meet: an explicit one refuses the file, a default one is clamped at run time.
      const storage = assessConfigStorage(loaded);
      const errors = storage.problems.filter((p) => p.severity === 'error');
      if (errors.length) throw new ForewarnError('FW_ERR_CONFIG_INVALID', `${file}: invalid configuration`, { details: errors.map((p) => `${p.path}: ${p.message}`) });
      for (const p of storage.problems) process.stderr.write(`forewarn: ${file}: ${p.severity}: ${p.path}: ${p.message} [FW_ERR_STORAGE_LIMITS]\n`);
      process.stdout.write(values.json ? `${JSON.stringify(redactConfig(loaded.config), null, 2)}\n` : `${file}: valid\n`);
      return 0;
    }
    case 'model': {
      if (sub === 'profile') {
        if (!arg || !values.data) usage('expected `model profile NAME --data TRAIN [--exclude FILE] [--write]`');
        const r = profileModel(path.join(values['models-dir'] ?? path.join(PACKAGE_ROOT, 'models'), arg), values.data, { ...(values.exclude ? { exclude: values.exclude } : {}), write: values.write });
        process.stdout.write(
          values.json
            ? `${JSON.stringify(r, null, 2)}\n`
            : `${r.model}@${r.version}: ${r.rows} training rows profiled from ${r.data}${r.skipped ? ` (${r.skipped} unreadable rows skipped)` : ''}\n${r.features.map((f) => `  ${f.name}: ${f.bins} bins${f.missing ? `, ${(f.missing * 100).toFixed(1)}% missing` : ''}`).join('\n')}\n${r.written ? `wrote ${r.written}` : 'dry run: add --write to store it in the manifest'}\n`,
        );
        return 0;
      }
      if (sub !== 'eval' || !arg) usage('expected `model eval NAME --data FILE.csv` or `model profile NAME --data TRAIN`');
      if (!values.data) usage('model eval needs --data FILE.csv');
      const modelsDir = values['models-dir'] ?? path.join(PACKAGE_ROOT, 'models');
      if (values.rul) {
        const r = await evaluateRul(path.join(modelsDir, arg), values.data, values.rul, { latencyRuns: 200 });
        process.stdout.write(
          values.json
            ? `${JSON.stringify(r, null, 2)}\n`
            : [
                `${r.model}@${r.version} on ${r.data}: ${r.engines} engines`,
                `RMSE ${r.rmse.toFixed(2)} cycles  NASA score ${r.nasaScore.toFixed(1)}  mean error ${r.meanError.toFixed(2)} (late ${r.late})  MAE ${r.mae.toFixed(2)}`,
                ...(r.latency ? [`one inference, one thread: median ${r.latency.medianMs.toFixed(3)} ms, p95 ${r.latency.p95Ms.toFixed(3)} ms`] : []),
              ].join('\n') + '\n',
        );
        return 0;
      }
      const threshold = values.threshold === undefined ? undefined : Number(values.threshold);
      if (threshold !== undefined && !(threshold >= 0 && threshold <= 1)) usage('--threshold must be between 0 and 1');
      const result = await evaluateModel(path.join(modelsDir, arg), values.data, threshold === undefined ? {} : { threshold });
      if (values.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        const mm = result.metrics;
        const c = mm.confusion;
        process.stdout.write(
          [
            `${result.model}@${result.version} on ${result.data}: ${mm.rows} rows, ${mm.positives} positive${result.skipped.rows ? `, ${result.skipped.rows} skipped` : ''}`,
            `threshold ${mm.threshold}  F1 ${mm.f1.toFixed(4)}  precision ${mm.precision.toFixed(4)}  recall ${mm.recall.toFixed(4)}  PR-AUC ${mm.prAuc.toFixed(4)}  ROC-AUC ${mm.rocAuc.toFixed(4)}`,
            `confusion  TP ${c.tp}  FP ${c.fp}  FN ${c.fn}  TN ${c.tn}`,
            ...Object.entries(result.breakdown).map(([k, b]) => `  ${k}: ${b.detected}/${b.positives} detected`),
          ].join('\n') + '\n',
        );
      }
      return 0;
    }
    default:
      usage(`unknown command: ${command}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A daemon that stopped has nothing left to wait for; one-shot commands end on their own.
    if (code !== undefined) setImmediate(() => process.exit(code)).unref();
  },
  (err) => {
    process.exitCode = fail(err);
  },
);
