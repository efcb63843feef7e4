import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../core/package-root.js';
import { envName, scalarOptions } from './load-config.js';
import { unitOf, type OptionUnit, type SchemaNode } from '../core/schema-node.js';
import { configSchema } from './schema.js';

/**
 * Renders docs/configuration.md from the schema, so every option's line is always there and always true.
 * `npm run docs:config` rewrites the file; a test fails when it is out of date.
 */

const UNIT_TYPE: Record<OptionUnit, string> = {
  bytes: 'size: bytes or `512MiB`',
  ms: 'duration: ms or `30s`',
  seconds: 'duration: s or `5m`',
  hours: 'duration: h or `30m`',
};

function typeOf(node: SchemaNode, key: string): string {
  if (node.enum) return node.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  const unit = unitOf(key, node);
  return unit ? UNIT_TYPE[unit] : node.type;
}

function defaultOf(node: SchemaNode): string {
  const d = node.default;
  if (d === '') return '*(empty)*';
  return `\`${JSON.stringify(d)}\``;
}

function limits(node: SchemaNode): string {
  const out: string[] = [];
  if (node.minimum !== undefined) out.push(`≥ ${node.minimum}`);
  if (node.maximum !== undefined) out.push(`≤ ${node.maximum}`);
  return out.length ? ` (${out.join(', ')})` : '';
}

export function renderConfigDocs(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from agent/src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'Forewarn reads one YAML file, named by `--config FILE` or the `FOREWARN_CONFIG` environment variable. With neither, it runs on the defaults below: nothing needs configuring to start.',
    '',
    'Every option can also be set by an environment variable, which wins over the file: `FOREWARN_` followed by the option path in upper snake case (`broker.tls.caFile` → `FOREWARN_BROKER_TLS_CA_FILE`). Arrays take JSON.',
    '',
    "Sizes and durations take units, in the file and in the environment: an option in bytes (`…Bytes`) takes `512MiB`, `1GiB` (powers of 1024: KiB, MiB, GiB, TiB) or `500MB`, `2GB` (powers of 1000: kB, MB, GB, TB); one in milliseconds, seconds or hours (`…Ms`, `…Seconds`, `…Hours`) takes `250ms`, `30s`, `5m`, `1h`, `2d` or `1h30m`. A plain number is in the option's own unit, as the tables say. A value with a unit that cannot be read is refused as `path: message`.",
    '',
    'Secrets: the broker password can come from `broker.passwordFile` or `FOREWARN_BROKER_PASSWORD` instead of the YAML. Secret values never appear in logs, in `forewarn config show` or in `forewarn config check --json`.',
    '',
    "Check the configuration without running the agent: `npx forewarn config check FILE` applies the environment exactly as `forewarn run` does; `npx forewarn config show FILE` prints every option's value and where it came from (`default`, the file, or the environment variable). An invalid configuration exits with code 2 and one line per problem, `path: message` (a value from the environment names its variable):",
    '',
    '```',
    'forewarn: forewarn.yaml: invalid configuration [FW_ERR_CONFIG_INVALID]',
    '  broker.keepaliveSeconds: must be >= 5',
    '  broker.colour: unknown option',
    '```',
    '',
    'YAML anchors and aliases may be used; an alias without its anchor, or more than 100 alias expansions (a "billion laughs" file), is refused as invalid YAML (`FW_ERR_CONFIG_READ`).',
    '',
    'Loading a configuration also checks what it needs from the host: `storage.dir` must not be on a virtual file system such as `/proc` or `/sys` (SQLite cannot work there), and every `scoring.trustedKeys` and `commands.trustedKeys` entry must exist. `config check` and `forewarn doctor` also judge the storage limits against the size of the file system under `storage.dir`: a `storage.minFreeBytes` set to more than half of it is refused; the default floor is clamped to 10% of it (`FW_ERR_STORAGE_LIMITS`, a warning), as the agent does at start.',
    '',
    'A complete example with the defaults: [`docs/forewarn.example.yaml`](forewarn.example.yaml).',
    '',
  ];
  const sections = Object.entries(configSchema.properties ?? {});
  for (const [name, section] of sections) {
    lines.push(`## \`${name}\``, '', section.description + '.', '', '| option | type | default | environment | description |', '|---|---|---|---|---|');
    for (const { path: p, node } of scalarOptions(section, [name])) {
      lines.push(
        `| \`${p.join('.')}\` | ${typeOf(node, p[p.length - 1]!)}${limits(node)} | ${defaultOf(node)} | \`${envName(p)}\` | ${node.description.replace(/\|/g, '\\|')}${node.secret ? ' **Secret.**' : ''} |`,
      );
    }
    lines.push('');
  }
  lines.push(...entryTables(configSchema, []));
  return lines.join('\n');
}

/** One table per list option whose entries are objects (bindings, Modbus devices and their signals, sensor nodes). */
function entryTables(node: SchemaNode, at: string[]): string[] {
  const out: string[] = [];
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const p = [...at, key];
    if (child.type === 'object') out.push(...entryTables(child, p));
    if (child.type !== 'array' || child.items?.type !== 'object' || !child.items.properties) continue;
    const item = child.items;
    const required = new Set(item.required ?? []);
    out.push(`### \`${p.join('.')}[]\` entries`, '', item.description.replace(/\.?$/, '.'), '', '| key | type | default | description |', '|---|---|---|---|');
    const rows = (props: Record<string, SchemaNode>, prefix: string) => {
      for (const [k, spec] of Object.entries(props)) {
        const dflt = required.has(k) && !prefix ? '*(required)*' : spec.default === undefined ? '–' : defaultOf(spec);
        out.push(`| \`${prefix}${k}\` | ${typeOf(spec, k)}${limits(spec)} | ${dflt} | ${spec.description.replace(/\|/g, '\\|')} |`);
        // An entry's own sections (a source's `iso10816`) get their options as dotted rows.
        if (spec.type === 'object' && spec.properties) rows(spec.properties, `${prefix}${k}.`);
      }
    };
    rows(item.properties ?? {}, '');
    out.push('');
    out.push(...entryTables(item, [...p.slice(0, -1), `${key}[]`]));
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const target = path.join(PACKAGE_ROOT, 'docs', 'configuration.md');
  writeFileSync(target, renderConfigDocs());
  process.stdout.write(`wrote ${target}\n`);
}
