import type { StoreTables } from '../api/fleet-queries.js';
import type { SqlQueries } from '../sql/sql-client.js';

/**
 * The failure modes a technician picks from when resolving an alert, one list per asset kind, each ending in
 * `other` (described in the note). The ids are what `alert_workflow.failure_mode` stores and what the label
 * export hands to training, so an id never changes meaning: add new ones, never rename.
 *
 * The asset kind is inferred from what central knows, first match wins (docs/console.md, "Alert workflow"):
 * 1. the asset's models in `fleet_latest_risk`: `machine-failure` → machine, `turbofan-rul` → turbofan,
 *    `disk-failure` → disk (a model was trained on one kind of asset, so it is the surest sign);
 * 2. the rule of the asset's alerts in `central_alerts`, active ones first, then the newest: `gpu.*` → gpu,
 *    `disk.*` → disk, `memory.*` → memory, `pcie.*` → pcie, `vibration.*` → rotating (ISO 10816 vibration);
 * 3. the asset's name: `host` or the agent's own id (the host, EDAC and PCIe AER sources file their readings
 *    under it) → host, `gpu-…` → gpu, `disk-…` → disk (the names the GPU and SMART sources give);
 * 4. an alert without an asset (agent offline, version skew) → agent; anything else → generic.
 */

export type AssetKind = 'gpu' | 'disk' | 'memory' | 'pcie' | 'host' | 'machine' | 'turbofan' | 'rotating' | 'agent' | 'generic';

export interface FailureMode {
  id: string;
  label: string;
}

export const OTHER_FAILURE_MODE: FailureMode = { id: 'other', label: 'Other (described in the note)' };

const CATALOGUE: Record<AssetKind, readonly FailureMode[]> = {
  gpu: [
    { id: 'gpu-memory', label: 'GPU memory errors (HBM/GDDR ECC, row remapping, retired pages)' },
    { id: 'gsp', label: 'GPU System Processor fault (Xid 119/120)' },
    { id: 'fell-off-bus', label: 'Fell off the bus (Xid 79)' },
    { id: 'nvlink', label: 'NVLink errors' },
    { id: 'pcie-link', label: 'PCIe link degraded (replays, width or speed down)' },
    { id: 'thermal', label: 'Overheating or cooling failure' },
    { id: 'power', label: 'Power delivery (power brake, cabling)' },
    { id: 'driver-firmware', label: 'Driver or firmware fault' },
    { id: 'board', label: 'Board failure (GPU replaced)' },
  ],
  disk: [
    { id: 'media', label: 'Media wear or bad sectors (reallocated, pending, uncorrectable)' },
    { id: 'mechanical', label: 'Head or mechanical failure' },
    { id: 'nvme-wear', label: 'NVMe endurance used up (spare low, percentage used)' },
    { id: 'controller-firmware', label: 'Controller or firmware fault' },
    { id: 'cable-backplane', label: 'Cable, backplane or port fault' },
    { id: 'thermal', label: 'Overheating' },
    { id: 'power-loss', label: 'Power loss (unsafe shutdowns)' },
  ],
  memory: [
    { id: 'dimm', label: 'DIMM failure (module replaced)' },
    { id: 'dimm-seating', label: 'DIMM badly seated or dirty contacts' },
    { id: 'memory-controller', label: 'Memory controller or CPU socket fault' },
    { id: 'settings', label: 'BIOS settings (timings, voltage, overclock)' },
    { id: 'thermal', label: 'Overheating' },
  ],
  pcie: [
    { id: 'link-degraded', label: 'Link degraded (width or speed down, replays)' },
    { id: 'device', label: 'Device failure (card replaced)' },
    { id: 'riser-slot', label: 'Riser, cable or slot fault' },
    { id: 'seating', label: 'Card badly seated' },
    { id: 'driver-firmware', label: 'Driver or firmware fault' },
  ],
  host: [
    { id: 'psu', label: 'Power supply failure' },
    { id: 'cooling', label: 'Fan or cooling failure' },
    { id: 'cpu', label: 'CPU fault' },
    { id: 'memory', label: 'Memory (DIMM) fault' },
    { id: 'storage', label: 'Storage fault' },
    { id: 'motherboard', label: 'Motherboard fault' },
    { id: 'network', label: 'Network interface or cabling' },
    { id: 'os-software', label: 'Operating system or software fault' },
  ],
  // The failure modes of the AI4I 2020 data set, which the machine-failure model is trained on (TWF, HDF, PWF,
  // OSF, RNF): the label export maps them back to those flags.
  machine: [
    { id: 'tool-wear', label: 'Tool wear failure (TWF)' },
    { id: 'heat-dissipation', label: 'Heat dissipation failure (HDF)' },
    { id: 'power', label: 'Power failure (PWF)' },
    { id: 'overstrain', label: 'Overstrain failure (OSF)' },
    { id: 'random', label: 'Random failure (RNF)' },
  ],
  // C-MAPSS simulates HPC degradation (FD001/FD002) and HPC plus fan degradation (FD003/FD004).
  turbofan: [
    { id: 'hpc-degradation', label: 'High-pressure compressor (HPC) degradation' },
    { id: 'fan-degradation', label: 'Fan degradation' },
    { id: 'lpc-degradation', label: 'Low-pressure compressor (LPC) degradation' },
    { id: 'hpt-degradation', label: 'High-pressure turbine (HPT) degradation' },
    { id: 'lpt-degradation', label: 'Low-pressure turbine (LPT) degradation' },
    { id: 'sensor', label: 'Sensor fault' },
  ],
  // What ISO 10816 vibration severity points at on rotating machines.
  rotating: [
    { id: 'bearing', label: 'Bearing defect' },
    { id: 'imbalance', label: 'Imbalance' },
    { id: 'misalignment', label: 'Misalignment' },
    { id: 'looseness', label: 'Mechanical looseness' },
    { id: 'lubrication', label: 'Lubrication' },
    { id: 'resonance', label: 'Resonance' },
  ],
  agent: [
    { id: 'network', label: 'Network or broker unreachable' },
    { id: 'power-loss', label: 'Power loss' },
    { id: 'host-down', label: 'Host down or rebooted' },
    { id: 'agent-stopped', label: 'Agent stopped or crashed' },
    { id: 'upgrade', label: 'Upgrade or configuration change' },
  ],
  generic: [
    { id: 'wear', label: 'Wear' },
    { id: 'mechanical', label: 'Mechanical fault' },
    { id: 'electrical', label: 'Electrical fault' },
    { id: 'overheating', label: 'Overheating' },
    { id: 'sensor', label: 'Sensor or wiring fault' },
    { id: 'software', label: 'Software or configuration' },
  ],
};

export const ASSET_KINDS = Object.keys(CATALOGUE) as AssetKind[];

/** The failure modes of one kind, `other` last. */
export function failureModes(kind: AssetKind): FailureMode[] {
  return [...CATALOGUE[kind], OTHER_FAILURE_MODE];
}

const MODEL_KINDS: Record<string, AssetKind> = { 'machine-failure': 'machine', 'turbofan-rul': 'turbofan', 'disk-failure': 'disk' };
const RULE_KINDS: Array<[string, AssetKind]> = [
  ['gpu.', 'gpu'],
  ['disk.', 'disk'],
  ['memory.', 'memory'],
  ['pcie.', 'pcie'],
  ['vibration.', 'rotating'],
];

/** The kind an alert's rule names, or null (`risk.threshold`, `quality.*` and fleet rules name none). */
export function ruleKind(rule: string): AssetKind | null {
  for (const [prefix, kind] of RULE_KINDS) if (rule.startsWith(prefix)) return kind;
  return null;
}

/** The inference above from what is known of the asset (pure: the tests and `inferAssetKind` share it). */
export function assetKindFrom(agentId: string, asset: string | null, models: readonly string[], rules: readonly string[]): AssetKind {
  if (asset === null) return 'agent';
  for (const m of models) {
    const kind = MODEL_KINDS[m];
    if (kind) return kind;
  }
  for (const r of rules) {
    const kind = ruleKind(r);
    if (kind) return kind;
  }
  if (asset === 'host' || asset === agentId) return 'host';
  if (asset.startsWith('gpu-')) return 'gpu';
  if (asset.startsWith('disk-')) return 'disk';
  return 'generic';
}

/** What central knows of the asset: its models and its alerts' rules (active first, then newest first). */
export async function assetFacts(
  q: SqlQueries,
  tables: StoreTables,
  agentId: string,
  asset: string | null,
): Promise<{ models: string[]; rules: string[]; known: boolean }> {
  const models: string[] = [];
  const rules: string[] = [];
  let known = false;
  if (asset !== null && (await tables.has(q, 'fleet_latest_risk'))) {
    const rows = await q.all<{ model: string }>('SELECT model FROM fleet_latest_risk WHERE agent_id = ? AND asset = ? ORDER BY model', [agentId, asset]);
    models.push(...rows.map((r) => String(r.model)));
  }
  if (await tables.has(q, 'central_alerts')) {
    const rows = await q.all<{ rule: string }>(
      `SELECT rule FROM central_alerts WHERE agent_id = ? AND ${asset === null ? 'asset IS NULL' : 'asset = ?'}
        ORDER BY CASE WHEN state = 'active' THEN 0 ELSE 1 END, raised_ts DESC, alert_key LIMIT 100`,
      asset === null ? [agentId] : [agentId, asset],
    );
    rules.push(...rows.map((r) => String(r.rule)));
  }
  known = models.length > 0 || rules.length > 0;
  if (!known && asset !== null && (await tables.has(q, 'fleet_assets'))) {
    known = (await q.get('SELECT 1 AS one FROM fleet_assets WHERE agent_id = ? AND asset = ?', [agentId, asset])) !== undefined;
  }
  if (!known && asset === null && (await tables.has(q, 'fleet_agents'))) {
    known = (await q.get('SELECT 1 AS one FROM fleet_agents WHERE agent_id = ?', [agentId])) !== undefined;
  }
  return { models, rules, known };
}

/** The asset's kind, or null when central has never heard of it. */
export async function inferAssetKind(q: SqlQueries, tables: StoreTables, agentId: string, asset: string | null): Promise<AssetKind | null> {
  const facts = await assetFacts(q, tables, agentId, asset);
  return facts.known ? assetKindFrom(agentId, asset, facts.models, facts.rules) : null;
}
