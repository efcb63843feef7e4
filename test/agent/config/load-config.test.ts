import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, envName, loadConfig, redactConfig, scalarOptions } from '../../../agent/src/config/load-config.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';

function details(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (isForewarnError(err)) return [...err.details];
    throw err;
  }
  throw new Error('expected an error');
}

describe('config', () => {
  it('runs on embedded defaults with nothing configured', () => {
    const cfg = buildConfig(null, {});
    expect(cfg.broker.url).toBe('mqtt://127.0.0.1:1883');
    expect(cfg.agent.id).toMatch(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/);
    expect(cfg.broker.clientId).toBe(`forewarn-${cfg.agent.id}`);
    expect(path.isAbsolute(cfg.storage.dir)).toBe(true);
    expect(cfg.scoring.bindings).toEqual([
      { model: 'machine-failure', assets: ['sim-mill-1'] },
      { model: 'disk-failure', assets: ['disk-*'] },
    ]);
    expect(cfg.sources.host.asset).toBe(cfg.agent.id);
  });

  it('reads YAML and keeps defaults for what it does not set', () => {
    const cfg = buildConfig('agent:\n  id: press-7\nbroker:\n  url: mqtts://central:8883\n', {});
    expect(cfg.agent.id).toBe('press-7');
    expect(cfg.broker.url).toBe('mqtts://central:8883');
    expect(cfg.broker.keepaliveSeconds).toBe(30);
  });

  it('reports every problem as `path: message`', () => {
    const errs = details(() =>
      buildConfig('agent:\n  id: "bad id!"\nbroker:\n  url: http://x\n  keepaliveSeconds: 1\n  colour: red\nstorage:\n  synchronous: maybe\n', {}),
    );
    expect(errs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^agent\.id: /),
        expect.stringMatching(/^broker\.url: .*must match/),
        'broker.keepaliveSeconds: must be >= 5',
        'broker.colour: unknown option',
        'storage.synchronous: must be one of "full", "normal"',
      ]),
    );
    expect(errs).toHaveLength(5);
  });

  it('rejects YAML that does not parse, and a document that is not a mapping', () => {
    expect(() => buildConfig('agent: [1, 2', {})).toThrow(/not valid YAML/);
    expect(details(() => buildConfig('- 1\n- 2\n', {}))).toEqual(['(root): must be a mapping of options']);
  });

  it('takes every scalar option from the environment, with types coerced', () => {
    const cfg = buildConfig('broker:\n  url: mqtt://a:1\n', {
      FOREWARN_BROKER_URL: 'mqtt://b:2',
      FOREWARN_BROKER_KEEPALIVE_SECONDS: '45',
      FOREWARN_SOURCES_HOST_ENABLED: 'false',
      FOREWARN_BROKER_TLS_REJECT_UNAUTHORIZED: 'no',
    });
    expect(cfg.broker.url).toBe('mqtt://b:2');
    expect(cfg.broker.keepaliveSeconds).toBe(45);
    expect(cfg.sources.host.enabled).toBe(false);
    expect(cfg.broker.tls.rejectUnauthorized).toBe(false);
    expect(details(() => buildConfig(null, { FOREWARN_BROKER_KEEPALIVE_SECONDS: 'soon' }))).toEqual([
      'broker.keepaliveSeconds: must be a number (from FOREWARN_BROKER_KEEPALIVE_SECONDS)',
    ]);
    expect(envName(['broker', 'tls', 'caFile'])).toBe('FOREWARN_BROKER_TLS_CA_FILE');
  });

  it('reads the broker password from a file and never shows it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-'));
    writeFileSync(path.join(dir, 'pw'), 's3cret\n');
    const cfg = buildConfig(`broker:\n  passwordFile: ${path.join(dir, 'pw')}\n`, {});
    expect(cfg.broker.password).toBe('s3cret');
    expect(JSON.stringify(redactConfig(cfg))).not.toContain('s3cret');
    expect(() => buildConfig('broker:\n  passwordFile: /nonexistent/pw\n', {})).toThrow(/broker.passwordFile: cannot read/);
    expect(details(() => buildConfig(`broker:\n  password: a\n  passwordFile: ${path.join(dir, 'pw')}\n`, {}))).toEqual([
      'broker.passwordFile: give either broker.password or broker.passwordFile, not both',
    ]);
  });

  it('validates bindings', () => {
    expect(details(() => buildConfig('scoring:\n  bindings:\n    - model: x\n      assets: []\n', {}))).toEqual([
      'scoring.bindings.0.assets: must NOT have fewer than 1 items',
    ]);
  });

  it('loads a file named by FOREWARN_CONFIG and freezes the result', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-'));
    const file = path.join(dir, 'forewarn.yaml');
    writeFileSync(file, 'agent:\n  id: line-3\n');
    const { config, file: used } = loadConfig(undefined, { FOREWARN_CONFIG: file });
    expect(used).toBe(file);
    expect(config.agent.id).toBe('line-3');
    expect(Object.isFrozen(config.broker)).toBe(true);
  });

  it('gives every option a default and a description', () => {
    for (const { path: p, node } of scalarOptions()) {
      expect(node.default, p.join('.')).not.toBeUndefined();
      expect(node.description.length, p.join('.')).toBeGreaterThan(5);
    }
  });
});
