/**
 * Coded errors. Every code is documented in docs/errors.md (a test keeps the two in step).
 * Codes are stable: users grep logs and write alerts on them.
 */
export const ERROR_CODES = {
  FW_ERR_CONFIG_INVALID: 'The configuration does not match the schema',
  FW_ERR_CONFIG_READ: 'The configuration file cannot be read or parsed',
  FW_ERR_SECRET_READ: 'A secret file named in the configuration cannot be read',
  FW_ERR_NODE_VERSION: 'The Node.js running forewarn is older than package.json engines.node',
  FW_ERR_STORAGE_OPEN: 'The SQLite database cannot be opened or created',
  FW_ERR_STORAGE_WRITE: 'A record could not be committed to the database',
  FW_ERR_STORAGE_CORRUPT: 'The database file was corrupt or locked at start; it was set aside and a fresh one started',
  FW_ERR_STORAGE_IN_USE: 'Another agent process is using the same storage directory',
  FW_ERR_STORAGE_DROPPED: 'The storage quota or free-space floor was reached; records were dropped by policy',
  FW_ERR_STORAGE_LIMITS:
    'The storage quota or free-space floor does not fit the file system under storage.dir: a default floor was clamped, or the quota can never be reached',
  FW_ERR_STORAGE_FULL:
    'The file system holding the database is full: the drop policy runs, the reserve file is released, and collection resumes when space returns',
  FW_ERR_STORAGE_REPLACED: 'The database file was deleted or replaced while the agent ran; unacknowledged records moved into a fresh file',
  FW_ERR_ACK_MALFORMED: 'An end-to-end acknowledgement from the centre does not follow the contract; it was ignored',
  FW_ERR_MODEL_MANIFEST: 'A model manifest is missing, malformed or invalid',
  FW_ERR_MODEL_CHECKSUM: 'A model file does not match the sha256 in its manifest',
  FW_ERR_MODEL_SIGNATURE: "A model file's inputs or outputs disagree with its manifest",
  FW_ERR_MODEL_LOAD: 'onnxruntime could not load a model file',
  FW_ERR_MODEL_OUTPUT: 'A model produced an output that is not a finite number in range',
  FW_ERR_ANOMALY_STATE: 'A persisted anomaly baseline was corrupt or incompatible and was discarded',
  FW_ERR_MODEL_BUNDLE: 'A model bundle is malformed, too large, carries a path instead of a file name, or does not match its manifest',
  FW_ERR_MODEL_UNTRUSTED:
    'A model bundle is unsigned, signed by a key that is not trusted, fails its signature, or was altered after signing; or no trusted key is configured',
  FW_ERR_MODEL_KEY: 'A signing or trusted key file cannot be read, is not an ed25519 key of the right kind, or would be overwritten',
  FW_ERR_MODEL_GOLDEN: "A model's outputs on its golden inputs differ from the ones its recipe recorded",
  FW_ERR_MODEL_SHADOW: 'A candidate model disagreed with the current one beyond scoring.shadow bounds, or failed, while shadow-scored; it was rolled back',
  FW_ERR_MODEL_REGISTRY:
    'The installed-model registry refused a change (version not newer, already installed, nothing to roll back) or cannot be read or locked',
  FW_ERR_SOURCE_FAILED: 'A telemetry source failed to start or to sample',
  FW_ERR_SOURCE_UNAVAILABLE: "A source's tool or device is absent here, or the agent lacks permission to read it",
  FW_ERR_VIBRATION_BLOCK:
    'An acceleration block cannot give the ISO 10816-3 velocity (too short for the lower band edge, sampled too slowly for 1000 Hz, or not finite); its other features are kept',
  FW_ERR_OPCUA_UNTRUSTED: "An OPC UA server's certificate is not in the agent's trust list (or is invalid, expired or revoked); the connection was refused",
  FW_ERR_OPCUA_REJECTED: 'An OPC UA server refused the agent: its certificate, the security mode or policy, or the user identity',
  FW_ERR_OPCUA_NODE: 'An OPC UA node the configuration names is unknown to the server, refused, or was removed; the other nodes go on',
  FW_ERR_OPCUA_UNIT: "An OPC UA node's EngineeringUnits differ from the unit the configuration gives it",
  FW_ERR_BROKER_CONNECT: 'The MQTT broker refused or dropped the connection',
  FW_ERR_BROKER_PUBLISH: 'The MQTT broker rejected a publish',
  FW_ERR_BROKER_REFUSED: 'The MQTT broker refused the connection in its CONNACK',
  FW_ERR_BROKER_CLIENT_ID_TAKEN: "Another client connected with this agent's client id and the broker dropped this one",
  FW_ERR_SUBSCRIBER_SUBSCRIBE: "The broker refused one of the reference subscriber's subscriptions",
  FW_ERR_SUBSCRIBER_PAYLOAD: 'The reference subscriber received a message that does not follow the contract',
  FW_ERR_SUBSCRIBER_ACK: "The broker refused the reference subscriber's end-to-end acknowledgement to an agent",
  FW_ERR_SEQ_CONFLICT: 'A record arrived under an (agent, stream, seq) already stored with different content',
  FW_ERR_API_REQUEST: 'A central HTTP API request has a bad parameter, path encoding or method (HTTP 400 or 405)',
  FW_ERR_API_NOT_FOUND: 'A central HTTP API request names an endpoint, agent or asset that central does not know (HTTP 404)',
  FW_ERR_API_STORE: 'The central store did not answer a central HTTP API request (HTTP 503)',
  FW_ERR_API_LISTEN: 'The central HTTP API cannot listen on its host and port',
  FW_ERR_ALERT_RECORD: "An agent's alert record lacks a field central's alert book needs; it stays in the ledger but is not routed",
  FW_ERR_ALERT_EVALUATION: 'Central could not evaluate the fleet alert rules (usually the database); retried every interval',
  FW_ERR_ALERT_DELIVERY: 'Central could not deliver an alert to Alertmanager or a webhook (retried with backoff), or the receiver rejected it',
  FW_ERR_CONSOLE_AUTH: 'A console page or central API request came without a valid session (HTTP 401)',
  FW_ERR_CONSOLE_LOGIN: 'A console login was refused: unknown user, wrong password or disabled user (HTTP 401)',
  FW_ERR_CONSOLE_RATE_LIMIT: 'Too many failed console logins from one address or for one user; refused until the window passes (HTTP 429)',
  FW_ERR_CONSOLE_CSRF: "A console change came without the session's CSRF token or from another origin (HTTP 403)",
  FW_ERR_CONSOLE_FORBIDDEN: "A console user's role does not allow this action (HTTP 403)",
  FW_ERR_CONSOLE_USER: 'A console user could not be added, changed or removed (bad name, role or password, or no such user)',
  FW_ERR_WORKFLOW_ACTION: "An alert action (acknowledge, maintenance, resolve, false alarm) is malformed or not allowed in the alert's state (HTTP 400 or 409)",
  FW_ERR_ALERTMANAGER_SILENCE: 'Central could not create or expire an Alertmanager silence for an alert action; the action is kept and the silence retried',
  FW_ERR_LABELS_EXPORT: 'forewarn central export-labels cannot export: unknown model, bad --since/--until/--window, unreadable manifest or unwritable output',
  FW_ERR_COMMAND_MALFORMED: 'A remote command is not valid JSON, is too large, or lacks or mistypes a required field',
  FW_ERR_COMMAND_UNKNOWN: 'A remote command names a command the agent does not have',
  FW_ERR_COMMAND_EXPIRED: 'A remote command expired, is older than commands.maxAgeSeconds, or was issued in the future',
  FW_ERR_COMMAND_UNAUTHORIZED:
    'A remote command that changes the agent is unsigned, signed by a key not in commands.trustedKeys, or its signature does not verify; or no trusted key is configured',
  FW_ERR_COMMAND_REPLAY: 'A remote command repeats the id of one already accepted within its maximum age',
  FW_ERR_COMMAND_FAILED: 'A remote command was accepted but failed while it ran',
  FW_ERR_SPARKPLUG_PROTO: 'The Sparkplug B schema (sparkplug_b.proto) shipped with the agent cannot be read',
  FW_ERR_SPARKPLUG_MESSAGE: 'A Sparkplug NCMD or primary host STATE message is malformed; it was ignored',
  FW_ERR_DATA_FORMAT: 'An input data file for evaluation is malformed',
  FW_ERR_USAGE: 'The command line is malformed',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * The exit status of a command that ends with each error (docs/errors.md, "Exit codes"): 2 for what the operator
 * typed or configured (usage, configuration, secret files), 1 for everything else. One entry per code, so a new
 * code must choose its exit status here.
 */
export const EXIT_CODES: { readonly [C in ErrorCode]: 1 | 2 } = {
  FW_ERR_CONFIG_INVALID: 2,
  FW_ERR_CONFIG_READ: 2,
  FW_ERR_SECRET_READ: 2,
  FW_ERR_NODE_VERSION: 1,
  FW_ERR_STORAGE_OPEN: 1,
  FW_ERR_STORAGE_WRITE: 1,
  FW_ERR_STORAGE_CORRUPT: 1,
  FW_ERR_STORAGE_IN_USE: 1,
  FW_ERR_STORAGE_DROPPED: 1,
  FW_ERR_STORAGE_LIMITS: 1,
  FW_ERR_STORAGE_FULL: 1,
  FW_ERR_STORAGE_REPLACED: 1,
  FW_ERR_ACK_MALFORMED: 1,
  FW_ERR_MODEL_MANIFEST: 1,
  FW_ERR_MODEL_CHECKSUM: 1,
  FW_ERR_MODEL_SIGNATURE: 1,
  FW_ERR_MODEL_LOAD: 1,
  FW_ERR_MODEL_OUTPUT: 1,
  FW_ERR_ANOMALY_STATE: 1,
  FW_ERR_MODEL_BUNDLE: 1,
  FW_ERR_MODEL_UNTRUSTED: 1,
  FW_ERR_MODEL_KEY: 1,
  FW_ERR_MODEL_GOLDEN: 1,
  FW_ERR_MODEL_SHADOW: 1,
  FW_ERR_MODEL_REGISTRY: 1,
  FW_ERR_SOURCE_FAILED: 1,
  FW_ERR_SOURCE_UNAVAILABLE: 1,
  FW_ERR_VIBRATION_BLOCK: 1,
  FW_ERR_OPCUA_UNTRUSTED: 1,
  FW_ERR_OPCUA_REJECTED: 1,
  FW_ERR_OPCUA_NODE: 1,
  FW_ERR_OPCUA_UNIT: 1,
  FW_ERR_BROKER_CONNECT: 1,
  FW_ERR_BROKER_PUBLISH: 1,
  FW_ERR_BROKER_REFUSED: 1,
  FW_ERR_BROKER_CLIENT_ID_TAKEN: 1,
  FW_ERR_SUBSCRIBER_SUBSCRIBE: 1,
  FW_ERR_SUBSCRIBER_PAYLOAD: 1,
  FW_ERR_SUBSCRIBER_ACK: 1,
  FW_ERR_SEQ_CONFLICT: 1,
  FW_ERR_API_REQUEST: 1,
  FW_ERR_API_NOT_FOUND: 1,
  FW_ERR_API_STORE: 1,
  FW_ERR_API_LISTEN: 1,
  FW_ERR_ALERT_RECORD: 1,
  FW_ERR_ALERT_EVALUATION: 1,
  FW_ERR_ALERT_DELIVERY: 1,
  FW_ERR_CONSOLE_AUTH: 1,
  FW_ERR_CONSOLE_LOGIN: 1,
  FW_ERR_CONSOLE_RATE_LIMIT: 1,
  FW_ERR_CONSOLE_CSRF: 1,
  FW_ERR_CONSOLE_FORBIDDEN: 1,
  FW_ERR_CONSOLE_USER: 2,
  FW_ERR_WORKFLOW_ACTION: 1,
  FW_ERR_ALERTMANAGER_SILENCE: 1,
  FW_ERR_LABELS_EXPORT: 2,
  FW_ERR_COMMAND_MALFORMED: 1,
  FW_ERR_COMMAND_UNKNOWN: 1,
  FW_ERR_COMMAND_EXPIRED: 1,
  FW_ERR_COMMAND_UNAUTHORIZED: 1,
  FW_ERR_COMMAND_REPLAY: 1,
  FW_ERR_COMMAND_FAILED: 1,
  FW_ERR_SPARKPLUG_PROTO: 1,
  FW_ERR_SPARKPLUG_MESSAGE: 1,
  FW_ERR_DATA_FORMAT: 1,
  FW_ERR_USAGE: 2,
};

export class ForewarnError extends Error {
  readonly code: ErrorCode;
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: readonly string[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ForewarnError';
    this.code = code;
    this.details = options?.details ?? [];
  }
}

export function isForewarnError(err: unknown, code?: ErrorCode): err is ForewarnError {
  return err instanceof ForewarnError && (code === undefined || err.code === code);
}

/** A short, single-line description of any thrown value, for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * The exit status for any thrown value: a coded error's entry in EXIT_CODES; node:util parseArgs errors (an unknown
 * option, a missing value) are usage errors, 2; anything else 1.
 */
export function exitCodeOf(err: unknown): 1 | 2 {
  if (err instanceof ForewarnError) return EXIT_CODES[err.code];
  return String((err as { code?: unknown } | null)?.code ?? '').startsWith('ERR_PARSE_ARGS') ? 2 : 1;
}
