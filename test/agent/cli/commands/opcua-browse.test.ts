/**
 * `forewarn opcua browse` as a user runs it (the real CLI process) against a real OPC UA server serving the milling
 * machine: the listing names every node the mapping needs, with its node id, type, unit and value.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../helpers/agent-process.js';
import { MILL_NODES, MillOpcuaServer } from '../../../helpers/opcua-server.js';

let dir: string;
let server: MillOpcuaServer;
let config: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fw-browse-'));
  server = new MillOpcuaServer({ dir: path.join(dir, 'server') });
  await server.start();
  config = path.join(dir, 'forewarn.yaml');
  writeFileSync(config, `agent:\n  id: browse-test\nstorage:\n  dir: ${path.join(dir, 'data')}\n`);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('forewarn opcua browse', () => {
  it('lists the machine under Objects with node ids, data types, units and values (security None)', async () => {
    const r = await runCli(['opcua', 'browse', server.url, '--security', 'None', '--config', config]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+NODE ID\s+CLASS/);
    const machine = lines.find((l) => l.startsWith(`${server.asset} `));
    expect(machine).toContain(`ns=${server.namespaceIndex};s=${server.asset}`);
    const truth = server.truth();
    for (const n of MILL_NODES) {
      const line = lines.find((l) => l.trimStart().startsWith(`${n.name} `));
      expect(line, n.name).toBeDefined();
      expect(line).toMatch(/^ {2}\S/); // one level below the machine
      expect(line).toContain(server.nodeId(n.name));
      expect(line).toContain('Double');
      expect(line).toContain(String(truth[n.signal]));
    }
    expect(lines.find((l) => l.trimStart().startsWith('Torque '))).toContain('N·m (NU)');
    expect(lines.find((l) => l.trimStart().startsWith('RotationalSpeed '))).toContain('r/min (RPM)');
  });

  it('--json and --depth 1: only the Objects folder children, machine-readable', async () => {
    const r = await runCli(['opcua', 'browse', server.url, '--security', 'None', '--depth', '1', '--json', '--config', config]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { nodes: Array<{ level: number; browseName: string; nodeClass: string }>; truncated: boolean };
    expect(out.truncated).toBe(false);
    expect(out.nodes.every((n) => n.level === 1)).toBe(true);
    expect(out.nodes.map((n) => n.browseName)).toEqual(expect.arrayContaining(['Server', server.asset]));
  });

  it('a server not in the trust list: FW_ERR_OPCUA_UNTRUSTED with where to trust it, exit 1; a bad --depth is a usage error', async () => {
    const r = await runCli(['opcua', 'browse', server.url, '--config', config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[FW_ERR_OPCUA_UNTRUSTED]');
    expect(r.stderr).toContain(path.join(dir, 'data', 'opcua-pki', 'trusted', 'certs'));
    expect(r.stdout).toBe('');
    expect((await runCli(['opcua', 'browse', server.url, '--depth', 'x', '--config', config])).code).toBe(2);
    expect((await runCli(['opcua', 'browse', 'not-an-endpoint', '--config', config])).code).toBe(2);
  });
});
