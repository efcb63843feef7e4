import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, envName, loadConfig } from '../../../agent/src/config/load-config.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';

/** Every check across options, every environment coercion error and the unreadable files, each with its `path: message`. */

function failure(fn: () => unknown): { code: string; message: string; details: string[] } {
  try {
    fn();
  } catch (err) {
    if (isForewarnError(err)) return { code: err.code, message: err.message, details: [...err.details] };
    throw err;
  }
  throw new Error('expected the configuration to be refused');
}
const refused = (yaml: string, env: NodeJS.ProcessEnv = {}) => failure(() => buildConfig(yaml, env, 'forewarn.yaml'));
const tmp = () => mkdtempSync(path.join(tmpdir(), 'fw-config-x-'));

describe('config cross-checks', () => {
  it.each([
    [
      'Sparkplug credentials without their own url',
      'sparkplug:\n  username: spb\n',
      "sparkplug.username: credentials need sparkplug.url; with an empty url the broker's are used",
    ],
    [
      'Sparkplug password and passwordFile both',
      'sparkplug:\n  url: mqtt://scada:1883\n  password: x\n  passwordFile: /run/x\n',
      'sparkplug.passwordFile: give either sparkplug.password or sparkplug.passwordFile, not both',
    ],
    [
      'broker.reconnectMaxMs below broker.reconnectMinMs',
      'broker:\n  reconnectMinMs: 5000\n  reconnectMaxMs: 4999\n',
      'broker.reconnectMaxMs: must be at least broker.reconnectMinMs',
    ],
    [
      'drift alertPsi below watchPsi',
      'scoring:\n  drift:\n    watchPsi: 0.3\n    alertPsi: 0.2\n',
      'scoring.drift.alertPsi: must be at least scoring.drift.watchPsi',
    ],
    [
      'drift minSamples above windowSize',
      'scoring:\n  drift:\n    windowSize: 300\n    minSamples: 301\n',
      'scoring.drift.minSamples: must be at most scoring.drift.windowSize',
    ],
    [
      'a TLS client certificate without its key',
      'broker:\n  tls:\n    certFile: /etc/forewarn/client.crt\n',
      'broker.tls.keyFile: a client certificate needs both certFile and keyFile',
    ],
    [
      'a TLS client key without its certificate',
      'broker:\n  tls:\n    keyFile: /etc/forewarn/client.key\n',
      'broker.tls.keyFile: a client certificate needs both certFile and keyFile',
    ],
    [
      'both a password and a password file',
      'broker:\n  password: s3cret\n  passwordFile: /etc/forewarn/password\n',
      'broker.passwordFile: give either broker.password or broker.passwordFile, not both',
    ],
  ])('refuses %s', (_what, yaml, detail) => {
    const f = refused(yaml);
    expect(f.code).toBe('FW_ERR_CONFIG_INVALID');
    expect(f.message).toBe('forewarn.yaml: invalid configuration');
    expect(f.details).toEqual([detail]);
  });

  it('accepts each pair at its limit', () => {
    const cfg = buildConfig(
      [
        'broker:',
        '  reconnectMinMs: 5000',
        '  reconnectMaxMs: 5000',
        '  tls:',
        '    certFile: /etc/forewarn/client.crt',
        '    keyFile: /etc/forewarn/client.key',
        'scoring:',
        '  drift:',
        '    watchPsi: 0.2',
        '    alertPsi: 0.2',
        '    windowSize: 300',
        '    minSamples: 300',
        '',
      ].join('\n'),
      {},
    );
    expect(cfg.broker.reconnectMaxMs).toBe(cfg.broker.reconnectMinMs);
    expect(cfg.scoring.drift.alertPsi).toBe(cfg.scoring.drift.watchPsi);
    expect(cfg.scoring.drift.minSamples).toBe(cfg.scoring.drift.windowSize);
  });

  it('reports every cross-check that fails, not only the first', () => {
    const f = refused('broker:\n  reconnectMinMs: 9000\n  reconnectMaxMs: 100\nscoring:\n  drift:\n    watchPsi: 0.5\n    alertPsi: 0.1\n');
    expect(f.details).toEqual([
      'scoring.drift.alertPsi: must be at least scoring.drift.watchPsi',
      'broker.reconnectMaxMs: must be at least broker.reconnectMinMs',
    ]);
  });

  it('waits for valid values: with a schema error, only the schema errors are reported', () => {
    const f = refused('agent:\n  logLevel: loud\nbroker:\n  reconnectMinMs: 9000\n  reconnectMaxMs: 100\n');
    expect(f.details).toHaveLength(1);
    expect(f.details[0]).toMatch(/^agent\.logLevel: must be one of /);
  });

  it('checks the environment-set values across options too', () => {
    const f = refused('', { [envName(['broker', 'reconnectMinMs'])]: '8000', [envName(['broker', 'reconnectMaxMs'])]: '7000' });
    expect(f.details).toEqual(['broker.reconnectMaxMs: must be at least broker.reconnectMinMs']);
  });
});

describe('environment overrides that cannot be coerced', () => {
  const NUM = envName(['broker', 'batchMaxRecords']);
  const DURATION = envName(['broker', 'reconnectMinMs']);
  const notDuration = (v: string) =>
    `broker.reconnectMinMs: "${v}" is not a duration: milliseconds, or numbers with ms, s, m, h, d, e.g. \`30s\`, \`5m\`, \`1h30m\` (from ${DURATION})`;
  const BOOL = envName(['scoring', 'enabled']);
  const ARRAY = envName(['quality', 'analogSignals']);

  it.each([
    [NUM, 'fast', `broker.batchMaxRecords: must be a number (from ${NUM})`],
    [NUM, '', `broker.batchMaxRecords: must be a number (from ${NUM})`],
    [NUM, '   ', `broker.batchMaxRecords: must be a number (from ${NUM})`],
    [NUM, 'Infinity', `broker.batchMaxRecords: must be a number (from ${NUM})`],
    [NUM, '12abc', `broker.batchMaxRecords: must be a number (from ${NUM})`],
    [DURATION, 'fast', notDuration('fast')],
    [DURATION, 'Infinity', notDuration('Infinity')],
    [DURATION, '12abc', notDuration('12abc')],
    [DURATION, '', `broker.reconnectMinMs: must be a number (from ${DURATION})`],
    [BOOL, 'maybe', `scoring.enabled: must be true or false (from ${BOOL})`],
    [BOOL, '', `scoring.enabled: must be true or false (from ${BOOL})`],
    [BOOL, 'yess', `scoring.enabled: must be true or false (from ${BOOL})`],
    [ARRAY, 'temp.*', `quality.analogSignals: must be a JSON array (from ${ARRAY})`],
    [ARRAY, '[', `quality.analogSignals: must be a JSON array (from ${ARRAY})`],
  ])('%s=%j', (name, value, detail) => {
    const f = refused('', { [name]: value });
    expect(f.code).toBe('FW_ERR_CONFIG_INVALID');
    expect(f.details).toEqual([detail]);
  });

  it('coerces the spellings it documents', () => {
    for (const [raw, want] of [
      ['1', true],
      ['TRUE', true],
      ['yes', true],
      ['On', true],
      ['0', false],
      ['false', false],
      ['NO', false],
      ['off', false],
    ] as const)
      expect(buildConfig(null, { [BOOL]: raw }).scoring.enabled, raw).toBe(want);
    expect(buildConfig(null, { [NUM]: ' 250 ' }).broker.batchMaxRecords).toBe(250);
    expect(buildConfig(null, { [DURATION]: ' 2500 ' }).broker.reconnectMinMs).toBe(2500);
    expect(buildConfig(null, { [DURATION]: '2.5s' }).broker.reconnectMinMs).toBe(2500);
    expect(buildConfig(null, { [ARRAY]: '["fan.*"]' }).quality.analogSignals).toEqual(['fan.*']);
  });

  it('reports a JSON value of the wrong shape with the schema message, and several bad variables at once', () => {
    const f = refused('', { [ARRAY]: '{"a":1}', [NUM]: 'x', [BOOL]: 'x' });
    expect(f.details).toEqual(
      expect.arrayContaining([
        `broker.batchMaxRecords: must be a number (from ${NUM})`,
        `scoring.enabled: must be true or false (from ${BOOL})`,
        `quality.analogSignals: must be array (from ${ARRAY})`,
      ]),
    );
  });
});

describe('files the configuration names that cannot be read', () => {
  it('a configuration file that does not exist, or is a directory', () => {
    const dir = tmp();
    const missing = path.join(dir, 'nope.yaml');
    const gone = failure(() => loadConfig(missing, {}));
    expect(gone.code).toBe('FW_ERR_CONFIG_READ');
    expect(gone.message).toMatch(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read: .*ENOENT`));
    const notFile = failure(() => loadConfig(dir, {}));
    expect(notFile.code).toBe('FW_ERR_CONFIG_READ');
    expect(notFile.message).toMatch(/: cannot read: .*EISDIR/);
    // Through FOREWARN_CONFIG too.
    expect(failure(() => loadConfig(undefined, { FOREWARN_CONFIG: missing })).message.startsWith(`${missing}: cannot read:`)).toBe(true);
  });

  it('a broker password file that cannot be read', () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'pw'));
    const f = failure(() => buildConfig(`broker:\n  passwordFile: ${path.join(dir, 'pw')}\n`, {}));
    expect(f.code).toBe('FW_ERR_SECRET_READ');
    expect(f.message).toMatch(new RegExp(`^broker\\.passwordFile: cannot read ${path.join(dir, 'pw').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*EISDIR`));
  });

  it('a trusted key that does not exist', () => {
    const dir = tmp();
    const key = path.join(dir, 'missing.pub');
    writeFileSync(path.join(dir, 'ok.pub'), 'x');
    const f = refused(`commands:\n  trustedKeys: [${path.join(dir, 'ok.pub')}, ${key}]\n`);
    expect(f.details).toEqual([`commands.trustedKeys[1]: ${key} does not exist`]);
  });
});
