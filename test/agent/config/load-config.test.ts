import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, buildConfigDetailed, defaultAgentId, envName, loadConfig, redactConfig, scalarOptions } from '../../../agent/src/config/load-config.js';
import { PACKAGE_ROOT } from '../../../agent/src/core/package-root.js';
import { isForewarnError, type ForewarnError } from '../../../agent/src/core/errors.js';

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

  it('gives sections that share a YAML anchor their own defaults', () => {
    const shared = buildConfig('sources:\n  gpu: &off { enabled: false }\n  smart: *off\n  ipmi: *off\n', {});
    expect([shared.sources.gpu.enabled, shared.sources.smart.enabled, shared.sources.ipmi.enabled]).toEqual([false, false, false]);
    // Each section has its own options, not the union of every section that shares the anchor.
    expect(Object.keys(shared.sources.smart)).not.toContain('xid');
    expect(Object.keys(shared.sources.gpu)).toContain('xid');
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
    expect(details(() => buildConfig(null, { FOREWARN_BROKER_MAX_INFLIGHT: 'soon' }))).toEqual([
      'broker.maxInflight: must be a number (from FOREWARN_BROKER_MAX_INFLIGHT)',
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

describe('sizes and durations with units', () => {
  it('reads units in the file, in list entries and in the environment; plain numbers stay in the option unit', () => {
    const cfg = buildConfig(
      [
        'storage:',
        '  maxBytes: 1GiB',
        '  minFreeBytes: 512MB',
        '  retentionHours: 2d',
        '  checkIntervalMs: 2s',
        'broker:',
        '  keepaliveSeconds: 1m',
        '  reconnectMaxMs: 1h30m',
        '  connectTimeoutMs: 7000',
        'sources:',
        '  modbus:',
        '    devices:',
        '      - name: plc',
        '        host: 127.0.0.1',
        '        intervalMs: 250ms',
        '        signals:',
        '          - { asset: press, signal: t, registerType: holding, address: 0, intervalMs: 1m }',
      ].join('\n'),
      { FOREWARN_COMMANDS_MAX_PAYLOAD_BYTES: '4MiB', FOREWARN_SCORING_ANOMALY_PERSIST_INTERVAL_MS: '10m' },
    );
    expect(cfg.storage.maxBytes).toBe(2 ** 30);
    expect(cfg.storage.minFreeBytes).toBe(512_000_000);
    expect(cfg.storage.retentionHours).toBe(48);
    expect(cfg.storage.checkIntervalMs).toBe(2000);
    expect(cfg.broker.keepaliveSeconds).toBe(60);
    expect(cfg.broker.reconnectMaxMs).toBe(5_400_000);
    expect(cfg.broker.connectTimeoutMs).toBe(7000);
    const device = cfg.sources.modbus.devices[0]!;
    expect(device.intervalMs).toBe(250);
    expect(device.signals[0]!.intervalMs).toBe(60_000);
    expect(cfg.commands.maxPayloadBytes).toBe(4 * 2 ** 20);
    expect(cfg.scoring.anomaly.persistIntervalMs).toBe(600_000);
  });

  it('refuses a unit it cannot read, and a converted value out of range, as `path: message` (the variable named)', () => {
    expect(details(() => buildConfig('storage:\n  maxBytes: 1 gig\nbroker:\n  keepaliveSeconds: 2s\n', {}))).toEqual([
      'storage.maxBytes: "1 gig" is not a size: bytes, or a number with B, kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. `512MiB`',
      'broker.keepaliveSeconds: must be >= 5',
    ]);
    expect(details(() => buildConfig(null, { FOREWARN_STORAGE_CHECK_INTERVAL_MS: '5 minutes' }))).toEqual([
      'storage.checkIntervalMs: "5 minutes" is not a duration: milliseconds, or numbers with ms, s, m, h, d, e.g. `30s`, `5m`, `1h30m` (from FOREWARN_STORAGE_CHECK_INTERVAL_MS)',
    ]);
    // 6.5 s is not a whole number of seconds: the schema's own message.
    expect(details(() => buildConfig('broker:\n  keepaliveSeconds: 6500ms\n', {}))).toEqual(['broker.keepaliveSeconds: must be integer']);
    // A size where no unit belongs is still refused as before.
    expect(details(() => buildConfig('broker:\n  maxInflight: 10k\n', {}))).toEqual(['broker.maxInflight: must be integer']);
  });
});

describe('where each value came from', () => {
  it('names the default, the file or the environment variable for every scalar option', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-'));
    const file = path.join(dir, 'f.yaml');
    writeFileSync(file, `storage:\n  dir: ${dir}/data\nbroker:\n  url: mqtt://file:1\n  keepaliveSeconds: 20\n`);
    const loaded = loadConfig(file, { FOREWARN_BROKER_URL: 'mqtt://env:2', FOREWARN_AGENT_LOG_LEVEL: 'debug' });
    expect(loaded.config.broker.url).toBe('mqtt://env:2');
    expect(loaded.origins.get('broker.url')).toBe('FOREWARN_BROKER_URL');
    expect(loaded.origins.get('agent.logLevel')).toBe('FOREWARN_AGENT_LOG_LEVEL');
    expect(loaded.origins.get('broker.keepaliveSeconds')).toBe(file);
    expect(loaded.origins.get('storage.dir')).toBe(file);
    expect(loaded.origins.get('broker.maxInflight')).toBe('default');
    expect([...loaded.origins.keys()].sort()).toEqual(
      scalarOptions()
        .map((o) => o.path.join('.'))
        .sort(),
    );
  });
});

describe('auto/on/off options', () => {
  it('take true and false (a YAML habit) as on and off, from the file and the environment', () => {
    expect(buildConfig('commands:\n  enabled: true\n', {}).commands.enabled).toBe('on');
    expect(buildConfig('commands:\n  enabled: false\nagent:\n  view: false\n', {}).agent.view).toBe('off');
    expect(buildConfig(null, { FOREWARN_COMMANDS_ENABLED: 'false' }).commands.enabled).toBe('off');
    expect(buildConfig(null, {}).commands.enabled).toBe('auto');
    expect(details(() => buildConfig('commands:\n  enabled: maybe\n', {}))).toEqual(['commands.enabled: must be one of "auto", "on", "off"']);
  });

  it('refuses Sparkplug IDs with MQTT topic characters, with path: message, and fills the IDs from the agent id', () => {
    let details: string[] = [];
    try {
      buildConfig('sparkplug:\n  groupId: plant/a\n  primaryHostId: "scada#1"\n', {});
    } catch (err) {
      if (isForewarnError(err)) details = [...err.details];
    }
    expect(details).toEqual([expect.stringMatching(/^sparkplug\.groupId: /), expect.stringMatching(/^sparkplug\.primaryHostId: /)]);
    const c = buildConfig('agent:\n  id: press-4\nsparkplug:\n  enabled: true\n', {});
    expect(c.sparkplug).toMatchObject({ enabled: true, groupId: 'forewarn', edgeNodeId: 'press-4', clientId: 'forewarn-spb-press-4', primaryHostId: '' });
  });
});

/** The exact wording of each kind of problem, and the edges of reading a file: what `config check` prints, checked in process. */
describe('problem wording and reading edges', () => {
  function refusal(fn: () => unknown): ForewarnError {
    try {
      fn();
    } catch (err) {
      if (isForewarnError(err)) return err;
      throw err;
    }
    throw new Error('expected an error');
  }

  it('names a YAML syntax error with its line and column, and the file', () => {
    const err = refusal(() => buildConfig('agent: [1, 2', {}, 'f.yaml'));
    expect(err.code).toBe('FW_ERR_CONFIG_READ');
    expect(err.message).toBe('f.yaml: not valid YAML');
    expect(err.details).toEqual(['f.yaml: Flow sequence in block collection must be sufficiently indented and end with a ] at line 1, column 13:']);
  });

  it('points at the alias without an anchor, past aliases that resolve', () => {
    expect(refusal(() => buildConfig('a: &x 1\nb: *x\nc: *nope\n', {}, 'f.yaml')).details).toEqual([
      'f.yaml: Unresolved alias (the anchor must be set before the alias): nope at line 3, column 4',
    ]);
  });

  it('takes an empty file or one with only comments as the defaults; refuses a scalar document', () => {
    for (const text of ['', '# nothing set yet\n', '~\n']) expect(buildConfig(text, {}).broker.url, JSON.stringify(text)).toBe('mqtt://127.0.0.1:1883');
    for (const text of ['hello\n', '42\n']) {
      const err = refusal(() => buildConfig(text, {}, 'f.yaml'));
      expect(err.code).toBe('FW_ERR_CONFIG_INVALID');
      expect(err.message).toBe('f.yaml: invalid configuration');
      expect(err.details).toEqual(['(root): must be a mapping of options']);
    }
    expect(refusal(() => buildConfig('storage:\n', {})).details).toEqual(['storage: must be object']);
  });

  it('says where a problem of the defaults and the environment alone comes from', () => {
    const env = { FOREWARN_BROKER_MAX_INFLIGHT: 'soon' };
    expect(refusal(() => buildConfig(null, env)).message).toBe('(embedded defaults): invalid configuration');
    expect(refusal(() => loadConfig(undefined, env)).message).toBe('(embedded defaults): invalid configuration');
  });

  it('gives a required option, and a map key with `/` or `~`, their paths', () => {
    expect(details(() => buildConfig('scoring:\n  bindings:\n    - assets: [x]\n', {}))).toEqual(['scoring.bindings.0.model: is required']);
    // Ajv writes the key as `a~1b~0c` (JSON pointer); the message gives it as written.
    expect(details(() => buildConfig('sparkplug:\n  units: { "a/b~c": "" }\n', {}))).toEqual(['sparkplug.units.a/b~c: must NOT have fewer than 1 characters']);
  });

  it("explains a value that fails a pattern with the first sentence of the option's description", () => {
    expect(details(() => buildConfig('agent:\n  id: "-x"\n', {}))).toEqual([
      'agent.id: Agent id: the MQTT topic segment `forewarn/v1/{id}/…` and the key subscribers use (must match ^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$)',
    ]);
    // A description of one sentence ends at its last `.`; the `.` inside `opc.tcp` ends nothing.
    expect(
      details(() =>
        buildConfig('sources:\n  opcua:\n    endpoints:\n      - { name: a, url: "http://x", nodes: [{ nodeId: "ns=2;i=1", asset: a, signal: s }] }\n', {}),
      ),
    ).toEqual(['sources.opcua.endpoints.0.url: The endpoint URL, `opc.tcp://host:port[/path]` (must match ^opc\\.tcp://)']);
    expect(details(() => buildConfig('scoring:\n  bindings:\n    - { model: ../x, assets: [a] }\n', {}))).toEqual([
      expect.stringMatching(
        /^scoring\.bindings\.0\.model: Model name: lower-case letters, digits and `-`, as in its manifest, and its folder under `scoring\.modelsDir` \(and `<storage\.dir>\/models\/`\), so never a path \(must match /,
      ),
    ]);
  });

  it('takes a map option from the environment as a JSON object, and names a value that is not one', () => {
    expect(buildConfig(null, { FOREWARN_SPARKPLUG_UNITS: '{"rpm":"1/min"}' }).sparkplug.units).toEqual({ rpm: '1/min' });
    expect(details(() => buildConfig(null, { FOREWARN_SPARKPLUG_UNITS: 'rpm=1/min' }))).toEqual([
      'sparkplug.units: must be a JSON object (from FOREWARN_SPARKPLUG_UNITS)',
    ]);
  });

  it('takes `true` from the environment as `on`, and blank for a duration as no number', () => {
    expect(buildConfig(null, { FOREWARN_COMMANDS_ENABLED: 'true' }).commands.enabled).toBe('on');
    expect(details(() => buildConfig(null, { FOREWARN_BROKER_RECONNECT_MIN_MS: '  ' }))).toEqual([
      'broker.reconnectMinMs: must be a number (from FOREWARN_BROKER_RECONNECT_MIN_MS)',
    ]);
  });

  it('names a list entry by its index when its value cannot be read, and refuses a section given as a list', () => {
    expect(
      details(() =>
        buildConfig(
          'sources:\n  modbus:\n    devices:\n      - { name: plc, host: 127.0.0.1, intervalMs: soon, signals: [{ asset: p, signal: t, registerType: holding, address: 0 }] }\n',
          {},
        ),
      ),
    ).toEqual([expect.stringMatching(/^sources\.modbus\.devices\.0\.intervalMs: "soon" is not a duration/)]);
    expect(details(() => buildConfig('broker: [1]\n', {}))).toEqual(['broker: must be object']);
  });

  it('names the embedded defaults as the source when buildConfigDetailed is given none', () => {
    expect(refusal(() => buildConfigDetailed(null, { FOREWARN_BROKER_MAX_INFLIGHT: 'soon' })).message).toBe('(embedded defaults): invalid configuration');
  });

  it('reads a number option from the environment as a number', () => {
    const drift = buildConfig(null, { FOREWARN_SCORING_DRIFT_WATCH_PSI: '0.15', FOREWARN_SCORING_DRIFT_ALERT_PSI: '0.4' }).scoring.drift;
    expect([drift.watchPsi, drift.alertPsi]).toEqual([0.15, 0.4]);
  });

  it('refuses booleans that only contain or begin with a spelling it takes', () => {
    for (const raw of ['xon', 'onx', '10', 'xoff', 'offx', 'nox', 'x0'])
      expect(
        details(() => buildConfig(null, { FOREWARN_SCORING_ENABLED: raw })),
        raw,
      ).toEqual(['scoring.enabled: must be true or false (from FOREWARN_SCORING_ENABLED)']);
  });

  it('sets an option from the environment where the file has its section empty or as a list', () => {
    expect(buildConfig('broker:\n', { FOREWARN_BROKER_URL: 'mqtt://env:1' }).broker.url).toBe('mqtt://env:1');
    expect(buildConfig('broker: []\n', { FOREWARN_BROKER_URL: 'mqtt://env:1' }).broker).toMatchObject({ url: 'mqtt://env:1', keepaliveSeconds: 30 });
  });

  it('drops only the final newline of a password file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-'));
    writeFileSync(path.join(dir, 'crlf'), 'pa ss\r\n');
    writeFileSync(path.join(dir, 'lines'), 'one\ntwo\n');
    writeFileSync(path.join(dir, 'bare'), 'bare');
    expect(buildConfig(`broker:\n  passwordFile: ${path.join(dir, 'crlf')}\n`, {}).broker.password).toBe('pa ss');
    expect(buildConfig(`broker:\n  passwordFile: ${path.join(dir, 'lines')}\n`, {}).broker.password).toBe('one\ntwo');
    expect(buildConfig(`broker:\n  passwordFile: ${path.join(dir, 'bare')}\n`, {}).broker.password).toBe('bare');
    // Sparkplug's own password file, read the same way.
    expect(buildConfig(`sparkplug:\n  url: mqtt://spb:1\n  passwordFile: ${path.join(dir, 'crlf')}\n`, {}).sparkplug.password).toBe('pa ss');
  });

  it('says a trusted key it cannot read is unreadable, not missing', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-'));
    writeFileSync(path.join(dir, 'afile'), '');
    const key = path.join(dir, 'afile', 'centre.pub.pem');
    expect(details(() => buildConfig(`scoring:\n  trustedKeys: [${key}]\n`, {}))).toEqual([
      expect.stringMatching(new RegExp(`^scoring\\.trustedKeys\\[0\\]: cannot read ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*ENOTDIR`)),
    ]);
  });

  it('keeps client ids, edge node id and models directory that are set; fills and resolves the ones that are not', () => {
    const set = buildConfig('agent:\n  id: a1\nbroker:\n  clientId: c1\nsparkplug:\n  clientId: s1\n  edgeNodeId: e1\nscoring:\n  modelsDir: rel/models\n', {});
    expect([set.broker.clientId, set.sparkplug.clientId, set.sparkplug.edgeNodeId]).toEqual(['c1', 's1', 'e1']);
    expect(set.scoring.modelsDir).toBe(path.resolve('rel/models'));
    const unset = buildConfig('agent:\n  id: a1\n', {});
    expect([unset.broker.clientId, unset.sparkplug.clientId, unset.sparkplug.edgeNodeId]).toEqual(['forewarn-a1', 'forewarn-spb-a1', 'a1']);
    expect(unset.scoring.modelsDir).toBe(path.join(PACKAGE_ROOT, 'models'));
  });

  it('freezes the loaded configuration all the way down', () => {
    const { config } = loadConfig(undefined, {});
    expect([Object.isFrozen(config), Object.isFrozen(config.broker.tls), Object.isFrozen(config.scoring.bindings[0]!.assets)]).toEqual([true, true, true]);
  });

  it('turns a host name into an agent id: odd characters to `-`, no leading punctuation, at most 64 characters', () => {
    expect(defaultAgentId('My Host!')).toBe('My-Host-');
    expect(defaultAgentId('..-_a-b.c_d')).toBe('a-b.c_d');
    expect(defaultAgentId('x'.repeat(70))).toBe('x'.repeat(64));
    expect(defaultAgentId('press-7')).toBe('press-7');
    for (const host of ['', '---', '..']) expect(defaultAgentId(host), host).toBe('forewarn-agent');
  });

  it('redacts the secrets that are set, and nothing else', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-cfg-'));
    mkdirSync(path.join(dir, 'data'));
    const cfg = buildConfig(`broker:\n  password: b-secret\nsparkplug:\n  url: mqtt://spb:1\n  password: s-secret\nstorage:\n  dir: ${dir}/data\n`, {});
    const shown = redactConfig(cfg);
    expect([shown.broker.password, shown.sparkplug.password]).toEqual(['[redacted]', '[redacted]']);
    expect(redactConfig({ ...cfg, broker: { ...cfg.broker, password: '' } }).broker.password).toBe('');
    // Everything else as it was, and the original untouched.
    expect({ ...shown, broker: { ...shown.broker, password: 'b-secret' }, sparkplug: { ...shown.sparkplug, password: 's-secret' } }).toEqual(cfg);
    expect(cfg.broker.password).toBe('b-secret');
  });
});
