import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../../helpers/agent-process.js';

/**
 * Light on the device: node-opcua (about 3 s to load) is imported by an OPC UA source's start(), never by the
 * registry, the configuration or an agent without endpoints. Checked in a fresh process through Node's own
 * module trace (NODE_DEBUG=module names every CommonJS file it loads; node-opcua is CommonJS, and the last case
 * shows the check sees it when it is loaded).
 */
function loadedAfter(script: string): boolean {
  const registry = path.join(ROOT, 'dist/agent/src/sources/registry.js');
  const config = path.join(ROOT, 'dist/agent/src/config/load-config.js');
  const code = `
    const { SOURCE_PLUGINS } = await import(${JSON.stringify(registry)});
    const { buildConfig } = await import(${JSON.stringify(config)});
    const plugin = SOURCE_PLUGINS.find((p) => p.key === 'opcua');
    const ctx = { sink: () => {}, events: () => {}, log: { info() {}, warn() {}, error() {}, debug() {} }, agentId: 'a' };
    ${script}
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, NODE_DEBUG: 'module' },
  });
  if (run.status !== 0)
    throw new Error(
      run.stderr
        .split('\n')
        .filter((l) => !l.startsWith('MODULE'))
        .join('\n'),
    );
  return /node_modules\/node-opcua-client\//.test(run.stderr);
}

describe('the opcua plugin', () => {
  it('does not load node-opcua for the configuration, nor for an agent without endpoints', () => {
    expect(
      loadedAfter(`const cfg = buildConfig(null, {}); const sources = plugin.create(cfg.sources.opcua, ctx); if (sources.length) throw new Error('a source');`),
    ).toBe(false);
  });

  it('creates one source per enabled endpoint, still without loading node-opcua until start()', () => {
    expect(
      loadedAfter(`
        const cfg = buildConfig("sources:\\n  opcua:\\n    endpoints:\\n      - { name: a, url: 'opc.tcp://127.0.0.1:9', nodes: [{ nodeId: 'ns=1;s=x', asset: m, signal: x }] }\\n      - { name: b, enabled: false, url: 'opc.tcp://127.0.0.1:9', nodes: [{ nodeId: 'ns=1;s=x', asset: m, signal: x }] }\\n", {});
        const sources = plugin.create(cfg.sources.opcua, ctx);
        if (sources.map((s) => s.name).join() !== 'opcua:a') throw new Error(sources.map((s) => s.name).join());`),
    ).toBe(false);
  });

  it('(control) the check does see node-opcua once it is imported', () => {
    expect(loadedAfter(`await import('node-opcua-client');`)).toBe(true);
  });
});

describe('the opcua plugin probe (forewarn doctor)', () => {
  it('says what a secure endpoint still needs, warns about None, and fails on an unreadable password file', async () => {
    const { opcuaPlugin } = await import('../../../../agent/src/sources/opcua/plugin.js');
    const { buildConfig } = await import('../../../../agent/src/config/load-config.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'fw-opcua-probe-'));
    const yaml = `storage: { dir: ${dir} }
sources:
  opcua:
    endpoints:
      - { name: secure, url: 'opc.tcp://h:4840', identity: { type: userName, userName: u, passwordFile: ${dir}/missing }, nodes: [{ nodeId: 'ns=1;s=x', asset: m, signal: x }] }
      - { name: open, url: 'opc.tcp://h:4841', securityMode: None, securityPolicy: None, nodes: [{ nodeId: 'ns=1;s=x', asset: m, signal: y }] }
`;
    const cfg = buildConfig(yaml, {}).sources.opcua;
    const checks = await opcuaPlugin.probe!(cfg);
    const by = (name: string) => checks.filter((c) => c.name === name).map((c) => c.status);
    expect(by('sources.opcua.secure')).toEqual(['warn']);
    expect(by('sources.opcua.open')).toEqual(['warn']);
    expect(by('sources.opcua.secure.identity')).toEqual(['fail']);
    mkdirSync(path.join(cfg.pkiDir, 'trusted', 'certs'), { recursive: true });
    writeFileSync(path.join(cfg.pkiDir, 'trusted', 'certs', 'server.pem'), 'x');
    writeFileSync(path.join(dir, 'missing'), 'pw', { mode: 0o600 });
    const after = await opcuaPlugin.probe!(cfg);
    expect(after.filter((c) => c.name.startsWith('sources.opcua.secure')).map((c) => c.status)).toEqual(['ok']);
    expect(await opcuaPlugin.probe!(buildConfig(null, {}).sources.opcua)).toEqual([]);
  });
});
