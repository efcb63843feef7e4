/**
 * The one schema for Forewarn's configuration. Every option has a default and a description;
 * docs/configuration.md is generated from this object (`npm run docs:config`), and a test checks that it is
 * current. Options marked `secret` never appear in logs and can be read from a file. The `sources` section is
 * the source plugins' own schemas, from the registry (agent/src/sources/registry.ts).
 */
import { DAY_MS, HOUR_MS, TIMEOUT_MAX_MS, schemaObject as obj, type SchemaNode } from '../core/schema-node.js';
import { SOURCES_SCHEMA } from '../sources/registry.js';
import { ALERTS_SCHEMA } from './alerts-schema.js';

/** Byte sizes: 1 PiB is beyond any disk an edge agent writes to; larger numbers are typos or lost precision. */
const MAX_BYTES = 2 ** 50;
/** MQTT's largest packet (the remaining length is at most 268,435,455 bytes). */
const MQTT_MAX_PACKET = 268_435_455;
/** Model names are folder names (scoring.modelsDir/<name>, <storage.dir>/models/<name>): the manifest's rule, so never a path. */
export const MODEL_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,63}$';

/** Ed25519 public keys whose signatures something accepts: model bundles and signed commands use the same form. */
const trustedKeys = (whoseSignatures: string): SchemaNode => ({
  type: 'array',
  description: `Public keys (ed25519 PEM files, or directories whose \`*.pem\` files are read) whose signatures ${whoseSignatures}`,
  default: [],
  items: { type: 'string', description: 'A PEM public key file or a directory of them.', minLength: 1 },
});

export const configSchema: SchemaNode = obj('Forewarn agent configuration', {
  agent: obj('Identity and logging', {
    id: {
      type: 'string',
      description:
        'Agent id: the MQTT topic segment `forewarn/v1/{id}/…` and the key subscribers use. Letters, digits, `-`, `_`, `.`. Empty means the host name.',
      default: '',
      pattern: '^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
    },
    logLevel: {
      type: 'string',
      description: 'Minimum log level.',
      enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
      default: 'info',
    },
    view: {
      type: 'string',
      description: 'Live terminal view: `auto` shows it when stdout is a terminal, `on` always, `off` never.',
      enum: ['auto', 'on', 'off'],
      default: 'auto',
    },
  }),
  storage: obj('The local SQLite buffer, the source of truth for everything collected', {
    dir: {
      type: 'string',
      description: 'Data directory (created 0700; the database file is 0600). Relative paths resolve against the working directory.',
      default: 'data',
      minLength: 1,
    },
    synchronous: {
      type: 'string',
      description:
        'SQLite `synchronous` mode. `full` survives power loss (an fsync per commit); `normal` survives a crash of the agent but may lose the last commits on power loss.',
      enum: ['full', 'normal'],
      default: 'full',
    },
    commitDelayMs: {
      type: 'integer',
      description:
        'Records that belong together (sources that tick together, the scores of their readings) are committed in one transaction, one write to flash instead of one each: as soon as those samples and scores have settled, at most once per this long, and at the latest this long after the first record waited. 0 commits what each event-loop turn produced.',
      default: 50,
      minimum: 0,
      maximum: 1000,
    },
    ackCommitDelayMs: {
      type: 'integer',
      description:
        "Acknowledgements (the broker's PUBACK, the centre's confirmation) move a watermark per stream in memory at once and are written with a commit of records at most this often, or on their own once this long passed without one (within twice this long): no write to flash per acknowledgement. A crash loses only acknowledgements not yet written: those records are sent again and the centre drops the duplicates. 0 writes each at once.",
      default: 5000,
      minimum: 0,
      maximum: 60000,
    },
    retentionHours: {
      type: 'number',
      description:
        'How long records stay in the database after they were acknowledged (by the centre or the broker, as `broker.ack` says), for gap repair. 0 deletes them once acknowledged.',
      default: 24,
      minimum: 0,
      maximum: 87600,
    },
    maxBytes: {
      type: 'integer',
      description:
        "Quota for the database's pages in bytes (the WAL adds a few MiB on top). When reached, acknowledged rows go first, then the oldest unsent telemetry, risk, events, and alerts only when nothing else is left; every drop is counted and announced (docs/delivery.md). 0 = no quota.",
      default: 1073741824,
      minimum: 0,
      maximum: MAX_BYTES,
    },
    minFreeBytes: {
      type: 'integer',
      description:
        "Free-space floor on the data directory's file system: below it the same drop policy applies and freed pages go back to the file system. 0 = no floor.",
      default: 268435456,
      minimum: 0,
      maximum: MAX_BYTES,
    },
    checkIntervalMs: {
      type: 'integer',
      description:
        'How often the quota and the free-space floor are checked, and that the database file is still the one open. A write the disk refuses is handled at once, whatever this is; the records themselves grow the database by kilobytes a minute.',
      default: 15000,
      minimum: 100,
      maximum: HOUR_MS,
    },
  }),
  broker: obj('The central MQTT broker (MQTT 5)', {
    url: {
      type: 'string',
      description: 'Broker URL: `mqtt://host:port`, `mqtts://host:port` (TLS), `ws://` or `wss://`.',
      default: 'mqtt://127.0.0.1:1883',
      pattern: '^(mqtt|mqtts|ws|wss|tcp|ssl|tls)://',
    },
    clientId: {
      type: 'string',
      description: 'MQTT client id. Empty means `forewarn-{agent.id}`. Must be unique per broker.',
      default: '',
    },
    username: { type: 'string', description: 'Username. Empty means none.', default: '' },
    password: {
      type: 'string',
      description: 'Password. Prefer `passwordFile` or the FOREWARN_BROKER_PASSWORD environment variable over writing it here.',
      default: '',
      secret: true,
    },
    passwordFile: { type: 'string', description: 'File holding the password (trailing newline ignored).', default: '' },
    keepaliveSeconds: { type: 'integer', description: 'MQTT keepalive.', default: 30, minimum: 5, maximum: 3600 },
    connectTimeoutMs: { type: 'integer', description: 'How long one connection attempt may take.', default: 10000, minimum: 500, maximum: TIMEOUT_MAX_MS },
    reconnectMinMs: {
      type: 'integer',
      description: 'First reconnect delay; doubles each failed attempt up to reconnectMaxMs, half of it random (jitter).',
      default: 1000,
      minimum: 50,
      maximum: HOUR_MS,
    },
    reconnectMaxMs: {
      type: 'integer',
      description: 'Longest reconnect delay: data resumes at most this long after the broker returns. Raise it for a large fleet on one broker.',
      default: 10000,
      minimum: 100,
      maximum: DAY_MS,
    },
    batchMaxRecords: { type: 'integer', description: 'Most records in one published message.', default: 500, minimum: 1, maximum: 10000 },
    maxMessageBytes: {
      type: 'integer',
      description:
        "Most bytes of records in one message before compression (a single larger record still goes alone). Lowered further to the broker's Maximum Packet Size when it announces one.",
      default: 262144,
      minimum: 1024,
      maximum: MQTT_MAX_PACKET,
    },
    compression: {
      type: 'string',
      description:
        "Compress batch payloads: `gzip`, or `none` for plain JSON. The payload says which (content type, and gzip's magic bytes); see docs/mqtt.md.",
      enum: ['none', 'gzip'],
      default: 'none',
    },
    compressMinBytes: {
      type: 'integer',
      description: 'Payloads smaller than this go uncompressed even with `compression: gzip`.',
      default: 1024,
      minimum: 0,
      maximum: MQTT_MAX_PACKET,
    },
    flushIntervalMs: {
      type: 'integer',
      description:
        'How often the sync looks for work that no commit announced: streams held back after a refusal, an unconfirmed tail (`ackTimeoutMs`), drain progress. New records go out as soon as they are committed, whatever this is, and each commit also resumes what was held back.',
      default: 15000,
      minimum: 10,
      maximum: HOUR_MS,
    },
    retainCurrentRisk: {
      type: 'boolean',
      description:
        'Also publish the latest score of each asset and model, retained, on `risk/current/{asset}/{model}` (for dashboards that join late): every risk record then goes out twice. Off by default; the central store answers the same question.',
      default: false,
    },
    progressLogMs: {
      type: 'integer',
      description: "How often drain progress of a backlog is logged (records left, rate, time to go), on the sync's tick (`flushIntervalMs`).",
      default: 15000,
      minimum: 100,
      maximum: DAY_MS,
    },
    maxInflight: {
      type: 'integer',
      description: "Most unacknowledged publishes at once; never more than the broker's Receive Maximum.",
      default: 10,
      minimum: 1,
      maximum: 65535,
    },
    ack: {
      type: 'string',
      description:
        "When a record may leave the outbox. `central`: once the central subscriber confirms it committed it (the retained `forewarn/v1/{id}/ack` message), so a broker that loses messages after acknowledging them (a restart that forgets shared subscriptions) loses nothing; the agent resends what the centre reports missing. `broker`: on the broker's PUBACK, for setups without a Forewarn-compatible central subscriber. See docs/delivery.md.",
      enum: ['central', 'broker'],
      default: 'central',
    },
    ackTimeoutMs: {
      type: 'integer',
      description:
        "With `ack: central`: records the broker acknowledged this long ago that the centre has not confirmed are sent again (the centre deduplicates). Only once the centre has acknowledged anything from this agent, so a setup without one is not flooded. Keep it well above the centre's acknowledgement interval (`--ack-interval`, 5 s by default) and its ingest lag, or records are sent twice for nothing.",
      default: 15000,
      minimum: 1000,
      maximum: 3600000,
    },
    tls: obj('TLS for `mqtts://` and `wss://`', {
      caFile: { type: 'string', description: 'PEM file of the CA that signed the broker certificate. Empty means the system store.', default: '' },
      certFile: { type: 'string', description: 'PEM client certificate for mutual TLS.', default: '' },
      keyFile: { type: 'string', description: 'PEM private key of the client certificate.', default: '' },
      rejectUnauthorized: { type: 'boolean', description: 'Verify the broker certificate. Turn off only for tests.', default: true },
    }),
  }),
  sources: SOURCES_SCHEMA,
  quality: obj('Data-quality checks on every signal; a value that fails is flagged in telemetry and never scored', {
    enabled: { type: 'boolean', description: 'Check data quality.', default: true },
    staleAfterIntervals: {
      type: 'number',
      description: 'A steady signal is stale when it has not arrived for this many of its usual intervals.',
      default: 5,
      minimum: 1.5,
      maximum: 10000,
    },
    flatlineSamples: {
      type: 'integer',
      description: 'Identical consecutive values that make a varying signal flatlined (a stuck sensor). 0 turns the check off.',
      default: 120,
      minimum: 0,
      maximum: 1000000,
    },
    stepFactor: {
      type: 'number',
      description: "A change larger than this many times the signal's usual change is a sudden step. 0 turns the check off.",
      default: 25,
      minimum: 0,
      maximum: 1000000,
    },
    analogSignals: {
      type: 'array',
      description:
        'Signals (`*` matches anything) that should vary and arrive steadily, so the flatline, step and stale checks apply; model inputs are always included.',
      default: ['temp.*.celsius', 'gpu.temperature_c', 'gpu.memory_temperature_c'],
      items: { type: 'string', description: 'A signal name pattern.', minLength: 1 },
    },
  }),
  alerts: ALERTS_SCHEMA,
  scoring: obj('Local failure-risk scoring with ONNX models', {
    enabled: { type: 'boolean', description: 'Score readings.', default: true },
    modelsDir: {
      type: 'string',
      description: 'Directory holding one folder per model (`<name>/manifest.json`). Empty means the `models/` folder shipped with the agent.',
      default: '',
    },
    threads: { type: 'integer', description: 'onnxruntime intra-op threads per model. Small hosts want 1.', default: 1, minimum: 1, maximum: 64 },
    drift: obj("Drift: whether a model's live inputs still look like its training data (PSI against the manifest's distributions)", {
      enabled: { type: 'boolean', description: 'Watch every model whose manifest has training distributions.', default: true },
      windowSize: {
        type: 'integer',
        description: 'Input rows per model and asset compared with the training data.',
        default: 500,
        minimum: 50,
        maximum: 100000,
      },
      minSamples: { type: 'integer', description: 'Rows needed before any verdict (state `warming` until then).', default: 200, minimum: 20, maximum: 100000 },
      evaluateEvery: { type: 'integer', description: 'Rows between two evaluations.', default: 50, minimum: 1, maximum: 100000 },
      watchPsi: { type: 'number', description: 'PSI from which a feature is worth watching (state `watch`); drift clears below it.', default: 0.1, minimum: 0 },
      alertPsi: {
        type: 'number',
        description:
          "PSI, beyond what chance explains at the window's effective size, from which a feature has drifted: state `drift`, a `model.drift` alert and event.",
        default: 0.25,
        minimum: 0,
      },
      outsideShare: {
        type: 'number',
        description: "Share of the window beyond the training data's 0.1%/99.9% quantiles from which a feature has drifted (half of it: `watch`).",
        default: 0.2,
        minimum: 0,
        maximum: 1,
      },
    }),
    anomaly: obj(
      "Adaptive anomaly detection: a multivariate baseline of each asset's signals, learned on the host without labels; records of kind `anomaly` from model `anomaly` (docs/anomaly-detection.md)",
      {
        enabled: {
          type: 'boolean',
          description: 'Learn a baseline per watched asset and score its readings against it (needs `scoring.enabled`).',
          default: true,
        },
        assets: {
          type: 'array',
          description:
            'Assets to watch: names or patterns with `*`. The default watches every asset: the host, the simulated machine, GPUs, disks, Modbus devices and sensor nodes.',
          default: ['*'],
          items: { type: 'string', description: 'Asset name or pattern.', minLength: 1 },
        },
        exclude: {
          type: 'array',
          description:
            'Signals (patterns with `*`) never modelled, e.g. labels or ground truth. Constant signals and counters that only grow are left out on their own.',
          default: ['machine_failure'],
          items: { type: 'string', description: 'A signal name pattern.', minLength: 1 },
        },
        falseAlarmRate: {
          type: 'number',
          description:
            'Share of scored readings flagged as anomalous while the asset behaves as it did during its baseline: the threshold is calibrated to it. Per reading, so the false alarms per day are this × readings per day (0.0001 at one reading per 5 s: about 1.7 a day).',
          default: 0.0001,
          minimum: 0.000001,
          maximum: 0.1,
        },
        warmupSamples: {
          type: 'integer',
          description:
            'Readings an asset must have before it is scored (state `warming` until then); a signal that appears later joins once it has half as many.',
          default: 1000,
          minimum: 50,
          maximum: 10000000,
        },
        halfLifeHours: {
          type: 'number',
          description:
            "How fast the baseline follows slow changes: a reading's weight halves over this time. While an asset is anomalous it learns ten times slower.",
          default: 24,
          minimum: 0.01,
          maximum: 87600,
        },
        recordIntervalMs: {
          type: 'integer',
          description:
            'How often a score that is not flagged becomes a record (stored and published): the highest score of each interval, with its drivers. Every flagged reading, and the first one after a flag, is recorded at once, and alerts see every score; 0 records every scored reading.',
          default: 60000,
          minimum: 0,
          maximum: DAY_MS,
        },
        persistIntervalMs: {
          type: 'integer',
          description: 'How often each baseline is saved to the database (also at stop), so a restart needs no new warm-up.',
          default: 300000,
          minimum: 1000,
          maximum: DAY_MS,
        },
        maxSignalsPerAsset: {
          type: 'integer',
          description:
            'Most signals modelled per asset (memory and time grow with its square: about 30 KB and 9 µs a reading at 30 signals, 146 KB and 41 µs at 100).',
          default: 64,
          minimum: 1,
          maximum: 256,
        },
      },
    ),
    bindings: {
      type: 'array',
      description:
        'Which model scores which asset. Each entry: `model` (a folder in modelsDir), `assets` (asset names or patterns with `*`), and optional `signals` mapping a manifest input name to another signal name.',
      default: [
        { model: 'machine-failure', assets: ['sim-mill-1'] },
        { model: 'disk-failure', assets: ['disk-*'] },
      ],
      items: {
        type: 'object',
        description: 'A binding of one model to assets',
        additionalProperties: false,
        required: ['model', 'assets'],
        properties: {
          model: {
            type: 'string',
            description:
              'Model name: lower-case letters, digits and `-`, as in its manifest, and its folder under `scoring.modelsDir` (and `<storage.dir>/models/`), so never a path. Example: `machine-failure`.',
            minLength: 1,
            pattern: MODEL_NAME_PATTERN,
          },
          assets: {
            type: 'array',
            description: 'Asset names whose readings this model scores, or patterns with `*` (`disk-*`).',
            minItems: 1,
            items: { type: 'string', description: 'Asset name or pattern.', minLength: 1 },
          },
          signals: {
            type: 'object',
            description: 'Manifest input name → the signal that feeds it on these assets, where an asset names it differently (e.g. `torque: spindle_torque`).',
            additionalProperties: { type: 'string', description: 'Signal name.', minLength: 1 },
          },
        },
      },
    },
    trustedKeys: trustedKeys('`forewarn model install` accepts (docs/model-updates.md). Empty: no bundle is installed.'),
    keepVersions: {
      type: 'integer',
      description:
        'Installed versions kept per model (under `<storage.dir>/models/`), the current one included; older ones are deleted. A candidate under evaluation is kept besides.',
      default: 3,
      minimum: 1,
      maximum: 100,
    },
    updateCheckIntervalMs: {
      type: 'integer',
      description: 'How often the running agent looks for models installed, promoted or rolled back by `forewarn model` commands.',
      default: 5000,
      minimum: 100,
      maximum: HOUR_MS,
    },
    shadow: obj('Shadow scoring: an installed candidate scores the same readings as the current model, unpublished, before it replaces it', {
      samples: {
        type: 'integer',
        description: 'Readings the candidate is compared on before it is promoted or rolled back. 0 promotes a verified candidate at once.',
        default: 200,
        minimum: 0,
        maximum: 1000000,
      },
      maxDisagreement: {
        type: 'number',
        description:
          'Largest share of those readings on which the candidate may disagree with the current model on `atRisk` (or give no score) and still be promoted.',
        default: 0.05,
        minimum: 0,
        maximum: 1,
      },
      maxMeanAbsDiff: {
        type: 'number',
        description: 'Probability models: largest mean |candidate score − current score| for promotion.',
        default: 0.05,
        minimum: 0,
        // Two probabilities never differ by more than 1.
        maximum: 1,
      },
      maxMeanAbsRulDiff: {
        type: 'number',
        description: 'Remaining-useful-life models: largest mean |candidate − current| in cycles for promotion.',
        default: 10,
        minimum: 0,
      },
    }),
  }),
  commands: obj('Remote control over MQTT 5 request/response on `forewarn/v1/{agentId}/cmd/{command}` (docs/commands.md)', {
    enabled: {
      type: 'string',
      description:
        "Subscribe to this agent's command topics and answer commands. `auto`: only when someone is trusted on purpose: `commands.trustedKeys` is set, or the broker knows the agent (`broker.username` or a TLS client certificate) so that its ACL decides who may publish them; with an anonymous broker any client could. `on` always (`true`), `off` never (`false`).",
      enum: ['auto', 'on', 'off'],
      default: 'auto',
    },
    maxAgeSeconds: {
      type: 'integer',
      description:
        'Requests whose `issuedAt` is older than this are refused (`FW_ERR_COMMAND_EXPIRED`); request ids are remembered this long to refuse replays.',
      default: 300,
      minimum: 1,
      maximum: 86400,
    },
    clockSkewSeconds: {
      type: 'integer',
      description:
        "How far the centre's clock may differ from the agent's: added to `maxAgeSeconds`, to `expiresAt`, and allowed for an `issuedAt` in the future.",
      default: 30,
      minimum: 0,
      maximum: 3600,
    },
    maxPayloadBytes: {
      type: 'integer',
      description: 'Largest request accepted, in bytes (an `install-model` request carries the bundle in base64).',
      default: 8388608,
      minimum: 1024,
      maximum: 100663296,
    },
    trustedKeys: trustedKeys(
      'commands that change the agent (`reload-config`, `set-log-level`, `install-model`) must carry. Empty: such commands are refused.',
    ),
  }),
  sparkplug: obj('A Sparkplug B 3.0 edge node: telemetry, risk and alert states for SCADA hosts such as Ignition (docs/sparkplug.md)', {
    enabled: {
      type: 'boolean',
      description:
        'Publish on `spBv1.0/{groupId}/…/{edgeNodeId}/{asset}` besides the Forewarn contract, from the same outbox, over its own MQTT connection (its own Will: the NDEATH).',
      default: false,
    },
    url: {
      type: 'string',
      description: "Broker of the Sparkplug host. Empty means `broker.url`, with the broker's credentials and TLS options.",
      default: '',
      pattern: '^$|^(mqtt|mqtts|ws|wss|tcp|ssl|tls)://',
    },
    username: { type: 'string', description: "Username on `sparkplug.url`. Empty means none (or the broker's when `url` is empty).", default: '' },
    password: {
      type: 'string',
      description: 'Password on `sparkplug.url`. Prefer `passwordFile` or FOREWARN_SPARKPLUG_PASSWORD.',
      default: '',
      secret: true,
    },
    passwordFile: { type: 'string', description: 'File holding the password on `sparkplug.url` (trailing newline ignored).', default: '' },
    clientId: { type: 'string', description: 'MQTT client id of the edge node. Empty means `forewarn-spb-{agent.id}`.', default: '' },
    groupId: {
      type: 'string',
      description: 'Sparkplug Group ID: the topic segment after `spBv1.0/`. No `/`, `+` or `#`.',
      default: 'forewarn',
      pattern: '^[^/+#]{1,64}$',
    },
    edgeNodeId: {
      type: 'string',
      description: 'Sparkplug Edge Node ID. Empty means `agent.id`. No `/`, `+` or `#`.',
      default: '',
      pattern: '^$|^[^/+#]{1,64}$',
    },
    primaryHostId: {
      type: 'string',
      description:
        'Host ID of the primary host application. When set, births wait until `spBv1.0/STATE/{primaryHostId}` says `online: true`, and the node disconnects and births again when the host goes offline and comes back. Empty: publish at once.',
      default: '',
      pattern: '^$|^[^/+#]{1,64}$',
    },
    units: {
      type: 'object',
      description:
        'Engineering unit of a signal (`signal: unit`), sent as the `engUnit` property in DBIRTH; overrides the unit the signal name implies (`…_c` °C, `…_pct` %, docs/sparkplug.md).',
      default: {},
      additionalProperties: { type: 'string', description: 'The unit, e.g. `K`, `rpm`, `mm/s`.', minLength: 1 },
    },
  }),
  metrics: obj('`/metrics` (Prometheus) and `/healthz` served by the agent (docs/observability.md)', {
    enabled: { type: 'boolean', description: 'Serve `/metrics` and `/healthz` over HTTP.', default: true },
    host: {
      type: 'string',
      description: 'Address to listen on. The default keeps it on this host; `0.0.0.0` or `::` exposes it to the network (there is no authentication).',
      default: '127.0.0.1',
      minLength: 1,
    },
    port: {
      type: 'integer',
      description: 'TCP port. 0 picks a free one and logs it. A port in use is logged and the agent runs on without the endpoints.',
      default: 9464,
      minimum: 0,
      maximum: 65535,
    },
  }),
});
