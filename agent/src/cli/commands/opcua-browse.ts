import { loadConfig } from '../../config/load-config.js';
import { createLogger } from '../../core/logger.js';
import { SECURITY_MODES, browseAddressSpace, browseOptionsFor, formatBrowse, type SecurityModeName } from '../../sources/opcua/opcua-browse.js';
import { parseCommandArgs, usageError, type CliCommand } from '../command.js';

/** `forewarn opcua browse`: the address space of an OPC UA server, to write `sources.opcua.endpoints[].nodes`. */
export const opcuaBrowse: CliCommand = {
  name: 'opcua browse',
  synopsis: 'forewarn opcua browse ENDPOINT [--depth N] [--security MODE] [--json]',
  summary: "list an OPC UA server's address space (node ids, types, units, values) to write the node mapping",
  usage: `forewarn opcua browse ENDPOINT [--depth N] [--security MODE] [--user NAME --password-file FILE] [--config FILE] [--json]

Connects to an OPC UA server as the agent does (its certificate store under sources.opcua.pkiDir, the same trust
list) and lists the address space from the Objects folder down: each node's name, node id, class, and for
variables the data type, EngineeringUnits and current value. The node ids go into sources.opcua.endpoints[].nodes.

ENDPOINT is an endpoint URL (opc.tcp://host:port) or the name of an endpoint in the configuration, whose security
and identity are then used.

  --depth N             levels below the Objects folder (default 3)
  --security MODE       None, Sign or SignAndEncrypt (default SignAndEncrypt, with Basic256Sha256; None for a
                        server that offers it, to browse before its certificate is trusted)
  --user NAME           user name identity, with --password-file FILE (never on the command line)
  -c, --config FILE     the configuration file (or FOREWARN_CONFIG)
  --json                print JSON

A server whose certificate is not trusted yet is refused (FW_ERR_OPCUA_UNTRUSTED, exit 1); its certificate is then
in <pkiDir>/rejected: move it to <pkiDir>/trusted/certs once you know it is the right server.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      this,
      argv,
      {
        depth: { type: 'string', default: '3' },
        security: { type: 'string' },
        user: { type: 'string' },
        'password-file': { type: 'string' },
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean', default: false },
      },
      1,
    );
    const target = positionals[0];
    if (!target) usageError(this, 'ENDPOINT is required');
    const depth = Number(values.depth);
    if (!Number.isInteger(depth) || depth < 1 || depth > 20) usageError(this, `--depth must be an integer from 1 to 20, got ${values.depth}`);
    if (values.security !== undefined && !(SECURITY_MODES as readonly string[]).includes(values.security)) {
      usageError(this, `--security must be one of ${SECURITY_MODES.join(', ')}`);
    }
    if ((values.user === undefined) !== (values['password-file'] === undefined)) usageError(this, '--user and --password-file go together');
    const { config } = loadConfig(values.config);
    // node-opcua's own chatter goes to the log at debug level: warnings only here, on stderr.
    const log = createLogger({ level: 'warn', pretty: false, fd: 2 });
    const options = browseOptionsFor(config.sources.opcua, config.agent.id, target, {
      ...(values.security === undefined ? {} : { security: values.security as SecurityModeName }),
      ...(values.user === undefined ? {} : { userName: values.user, passwordFile: values['password-file']! }),
      depth,
      log,
    });
    const { nodes, truncated } = await browseAddressSpace(options);
    process.stdout.write(values.json ? `${JSON.stringify({ nodes, truncated }, null, 2)}\n` : `${formatBrowse(nodes, truncated)}\n`);
    return 0;
  },
};
