import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type AgentConfig } from '../config/load-config.js';
import { ForewarnError } from '../core/errors.js';
import { createBundle, generateSigningKey, loadPrivateKey, loadTrustedKeys } from '../scoring/model-bundle.js';
import { installModelBundle } from '../scoring/install-model.js';
import { ModelRegistry, type ModelState } from '../scoring/model-registry.js';

/** `forewarn model keygen|bundle|install|list|rollback` (docs/model-updates.md). `model eval` stays in cli.ts. */

export const MODEL_COMMANDS: ReadonlySet<string> = new Set(['keygen', 'bundle', 'install', 'list', 'rollback']);

export const MODEL_USAGE = `forewarn model — safe model updates (docs/model-updates.md)

  forewarn model keygen --out DIR [--name NAME]    a new ed25519 signing key pair: NAME.key.pem (0600, keep
                                                   it on the signing host) and NAME.pub.pem (for agents)
  forewarn model bundle MODEL_DIR --key PRIVATE.pem --out FILE
                                                   sign a model folder into a single-file bundle
  forewarn model install BUNDLE [--config FILE] [--allow-downgrade] [--json]
                                                   verify, check and install a bundle as the candidate; the
                                                   running agent shadow-scores it, then promotes it or rolls
                                                   it back
  forewarn model list [--config FILE] [--json]     shipped and installed versions, current, candidate, history
  forewarn model rollback NAME [--config FILE] [--reason TEXT]
                                                   put the previous version of NAME back in use`;

function usage(message: string): never {
  throw new ForewarnError('FW_ERR_USAGE', `${message}\n\n${MODEL_USAGE}`);
}

const time = (ts: number) => new Date(ts).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');

/** The pid of the agent running on this storage directory, if any. */
function runningAgent(config: AgentConfig): number | null {
  try {
    const pid = Number(readFileSync(path.join(config.storage.dir, 'agent.pid'), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? -1 : null;
  }
}

function agentNote(config: AgentConfig, what: string): string {
  const pid = runningAgent(config);
  return pid === null ? `no agent is running on ${config.storage.dir}: ${what} when it starts` : `the running agent${pid > 0 ? ` (pid ${pid})` : ''} ${what} within scoring.updateCheckIntervalMs (${config.scoring.updateCheckIntervalMs} ms)`;
}

export async function runModelCommand(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean', default: false },
      out: { type: 'string', short: 'o' },
      key: { type: 'string' },
      name: { type: 'string' },
      reason: { type: 'string' },
      'allow-downgrade': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, arg, extra] = positionals;
  if (values.help) {
    out.write(`${MODEL_USAGE}\n`);
    return 0;
  }
  if (extra !== undefined) usage(`unexpected argument: ${extra}`);
  const write = (text: string) => out.write(`${text}\n`);
  const json = (value: unknown) => write(JSON.stringify(value, null, 2));

  switch (command) {
    case 'keygen': {
      if (!values.out) usage('model keygen needs --out DIR');
      if (arg !== undefined) usage(`unexpected argument: ${arg}`);
      const k = generateSigningKey(values.out, values.name);
      if (values.json) json(k);
      else {
        write(`key id   ${k.keyId}`);
        write(`private  ${k.privateFile}  (0600: keep it on the signing host; never copy it to agents)`);
        write(`public   ${k.publicFile}  (list it in scoring.trustedKeys on the agents)`);
      }
      return 0;
    }
    case 'bundle': {
      if (!arg) usage('model bundle needs a MODEL_DIR');
      if (!values.key) usage('model bundle needs --key PRIVATE.pem');
      if (!values.out) usage('model bundle needs --out FILE');
      const { bundle, json: text, warnings } = createBundle(arg, loadPrivateKey(values.key));
      writeFileSync(values.out, text, { mode: 0o644 });
      for (const w of warnings) err.write(`forewarn: warning: ${w}\n`);
      const summary = {
        file: values.out,
        model: bundle.name,
        version: bundle.version,
        keyId: bundle.signature!.keyId,
        files: Object.keys(bundle.files),
        bytes: Buffer.byteLength(text),
        sha256: createHash('sha256').update(text).digest('hex'),
      };
      if (values.json) json(summary);
      else write(`${summary.model}@${summary.version} signed with key ${summary.keyId} → ${summary.file} (${summary.files.length} files: ${summary.files.join(', ')}; ${summary.bytes} bytes)`);
      return 0;
    }
    case 'install': {
      if (!arg) usage('model install needs a BUNDLE file');
      const { config } = loadConfig(values.config);
      const registry = ModelRegistry.forConfig(config);
      const r = await installModelBundle(arg, {
        registry,
        trustedKeys: loadTrustedKeys(config.scoring.trustedKeys),
        shadowSamples: config.scoring.shadow.samples,
        threads: config.scoring.threads,
        allowDowngrade: values['allow-downgrade'] === true,
      });
      if (values.json) {
        json(r);
        return 0;
      }
      const golden = r.golden ? `golden outputs match (${r.golden.rows} rows, largest |Δ| ${r.golden.maxAbsDiff} ≤ ${r.golden.tolerance})` : 'no golden.json: baseline output checked';
      write(`${r.model}@${r.version}: signature verified (key ${r.keyId}), loads, ${golden}`);
      if (r.superseded) write(`replaces the candidate ${r.superseded}, which had not been promoted`);
      if (r.unchanged) {
        write(`already installed as ${r.outcome === 'candidate' ? 'the candidate' : 'the current version'}: nothing changed`);
      } else if (r.outcome === 'promoted') {
        write(`installed and promoted${r.currentVersion === null ? ' (a new model: nothing to shadow it against)' : ' (scoring.shadow.samples is 0)'}; ${agentNote(config, 'loads it')}`);
      } else {
        write(
          `installed as candidate beside ${r.currentVersion}; ${agentNote(config, `shadow-scores it on ${config.scoring.shadow.samples} readings, then promotes it or rolls it back,`)}. \`forewarn model list\` shows the outcome.`,
        );
      }
      return 0;
    }
    case 'list': {
      if (arg !== undefined) usage(`unexpected argument: ${arg}`);
      const { config } = loadConfig(values.config);
      const registry = ModelRegistry.forConfig(config);
      const names = [...new Set([...registry.shippedNames(), ...registry.names()])].sort();
      const models = names.map((name) => {
        const state: ModelState = registry.read(name);
        return {
          name,
          shipped: registry.shippedDir(name) ? { version: registry.shippedVersion(name), dir: registry.shippedDir(name) } : null,
          inUse: registry.currentVersion(name, state),
          current: state.current,
          candidate: state.candidate,
          previous: state.previous,
          installed: state.versions.map((v) => ({ ...v, dir: registry.versionDir(name, v.version) })),
          history: state.history,
          bound: config.scoring.bindings.filter((b) => b.model === name).flatMap((b) => b.assets),
        };
      });
      if (values.json) {
        json({ registry: registry.root, models });
        return 0;
      }
      write(`registry  ${registry.root}`);
      for (const m of models) {
        write('');
        write(`${m.name}${m.bound.length ? `  (scores ${m.bound.join(', ')})` : '  (not bound on this agent)'}`);
        write(`  in use     ${m.inUse ?? 'none'}${m.current ? ' (installed)' : m.shipped ? ' (shipped)' : ''}`);
        if (m.shipped) write(`  shipped    ${m.shipped.version ?? '?'}`);
        for (const v of m.installed) {
          const tag = v.version === m.current ? 'current' : v.version === m.candidate ? 'candidate' : 'kept for rollback';
          write(`  installed  ${v.version.padEnd(10)} ${tag.padEnd(26)} ${time(v.installedAt)}  key ${v.keyId}`);
        }
        for (const h of m.history.slice(-5)) {
          const what =
            h.action === 'candidate'
              ? `candidate ${h.version} installed`
              : h.action === 'promoted'
                ? `promoted ${h.version} (was ${h.other ?? 'none'})`
                : `rolled back ${h.version} → ${h.other ?? 'none'} [${h.stage}]`;
          write(`  ${time(h.ts)}  ${what}${h.reason ? `: ${h.reason}` : ''}`);
        }
      }
      return 0;
    }
    case 'rollback': {
      if (!arg) usage('model rollback needs a model NAME');
      const { config } = loadConfig(values.config);
      const registry = ModelRegistry.forConfig(config);
      const r = registry.rollback(arg, 'operator', values.reason ?? 'forewarn model rollback');
      if (values.json) json({ model: arg, ...r });
      else {
        write(`${arg}: rolled back ${r.from} → ${r.to ?? 'none'}${r.discarded ? ` (the candidate ${r.discarded} was discarded too)` : ''}`);
        write(agentNote(config, 'switches to it'));
      }
      return 0;
    }
    default:
      usage(`unknown model command: ${command ?? '(none)'}`);
  }
}
