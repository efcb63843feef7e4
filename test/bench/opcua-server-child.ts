/**
 * The OPC UA server of opcua.bench.ts, in a process of its own so that the benchmark's CPU figures are the
 * client's alone:
 *
 *   node dist/test/bench/opcua-server-child.js '{"dir":"…","variables":1000,"changeEveryMs":100,"trust":"agent.pem"}'
 *
 * Serves the milling machine plus `variables` Double variables, trusts the certificate `trust` (the agent's), and
 * writes a new value to every variable each `changeEveryMs`. Prints one JSON line: { port, certificateFile,
 * namespaceIndex, asset }; exits when its stdin closes.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { MillOpcuaServer } from '../helpers/opcua-server.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { dir: string; variables: number; changeEveryMs: number; trust: string };
const server = new MillOpcuaServer({ dir: args.dir, extraVariables: args.variables });
mkdirSync(server.trustedFolder, { recursive: true });
copyFileSync(args.trust, path.join(server.trustedFolder, 'agent.pem'));
await server.start();
let value = 0;
const timer = setInterval(() => server.setExtras(++value), args.changeEveryMs);
process.stdout.write(
  `${JSON.stringify({ port: server.port, certificateFile: server.certificateFile, namespaceIndex: server.namespaceIndex, asset: server.asset })}\n`,
);
process.stdin.resume();
process.stdin.on('end', () => {
  clearInterval(timer);
  void server.stop().then(() => process.exit(0));
});
