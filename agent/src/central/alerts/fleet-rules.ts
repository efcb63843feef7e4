import type { SqlQueries } from '../sql/sql-client.js';

/**
 * Fleet alerts: conditions no single agent can report, computed by central from the fleet registry
 * (`fleet_agents`, `fleet_assets`). Each rule returns the alerts whose condition holds now; the evaluator raises
 * those not yet active and resolves the active ones that no longer appear. docs/central.md ("Fleet alerts")
 * lists this catalogue; a test keeps the two in step.
 */

export interface FleetRuleLimits {
  /** An agent is offline (its status or its Will said so) or silent for longer than this. Default 10 min. */
  agentOfflineMs: number;
  /** An asset has sent nothing for longer than this while its agent is online. Default 30 min. */
  assetSilentMs: number;
  /** An agent runs another version than the fleet's newest for longer than this after the newest appeared. Default 24 h. */
  versionSkewMs: number;
}

export const DEFAULT_FLEET_LIMITS: FleetRuleLimits = {
  agentOfflineMs: 10 * 60_000,
  assetSilentMs: 30 * 60_000,
  versionSkewMs: 24 * 3_600_000,
};

/** One condition that holds now. */
export interface FleetFinding {
  subject: string;
  agentId: string;
  asset: string | null;
  title: string;
  value: number | null;
  evidence: Record<string, string | number | boolean | null>;
}

export interface FleetRule {
  name: string;
  severity: 'info' | 'warning' | 'critical';
  /** What the rule watches, for the catalogue. */
  summary: string;
  /** The evidence fields it attaches. */
  evidence: string;
  remedy: string;
  evaluate(q: SqlQueries, now: number, limits: FleetRuleLimits): Promise<FleetFinding[]>;
}

interface AgentRow {
  agent_id: string;
  last_seen_ts: number;
  state: string | null;
  state_ts: number | null;
  reason: string | null;
  version: string | null;
}

/** Whether an agent counts as offline at `now`: it said so (status or Will) or nothing came from it for `limit`. */
function offlineSince(a: AgentRow, now: number, limit: number): number | null {
  if (a.state === 'offline' && a.state_ts !== null && now - a.state_ts >= limit) return a.state_ts;
  // A dead agent behind a dead broker sends no Will: silence alone counts too.
  if (now - a.last_seen_ts >= limit) return a.last_seen_ts;
  return null;
}

const agentOffline: FleetRule = {
  name: 'agent-offline',
  severity: 'critical',
  summary:
    "An agent's status has said offline (a clean shutdown or its Will) for longer than `agentOfflineMs`, or nothing at all has arrived from it for that long (a dead agent behind a dead broker sends no Will).",
  evidence: 'state, reason, offlineSince, lastSeen (ISO times), silentMinutes',
  remedy:
    'Check that the host is up and the agent runs (`systemctl status forewarn`), then its route to the broker (`forewarn doctor`). An agent that was retired: delete its row from fleet_agents.',
  async evaluate(q, now, limits) {
    const rows = await q.all<AgentRow>('SELECT agent_id, last_seen_ts, state, state_ts, reason, version FROM fleet_agents ORDER BY agent_id');
    const out: FleetFinding[] = [];
    for (const a of rows) {
      const since = offlineSince(a, now, limits.agentOfflineMs);
      if (since === null) continue;
      const silent = Math.floor((now - a.last_seen_ts) / 60_000);
      out.push({
        subject: a.agent_id,
        agentId: a.agent_id,
        asset: null,
        title: `Agent ${a.agent_id} offline for ${Math.floor((now - since) / 60_000)} min`,
        value: silent,
        evidence: {
          state: a.state,
          reason: a.reason,
          offlineSince: new Date(since).toISOString(),
          lastSeen: new Date(a.last_seen_ts).toISOString(),
          silentMinutes: silent,
        },
      });
    }
    return out;
  },
};

const assetSilent: FleetRule = {
  name: 'asset-silent',
  severity: 'warning',
  summary:
    'An asset has sent no record for longer than `assetSilentMs` (receive times in `fleet_assets.last_seen_ts`) while its agent is not offline (an offline agent raises agent-offline instead of one alert per asset).',
  evidence: 'lastSeen, lastReading (ISO times), silentMinutes',
  remedy:
    "Check the asset's source on its agent (`forewarn status`, the agent log for FW_ERR_SOURCE_FAILED): a cable, a device, a changed address. An asset that was retired: delete its row from fleet_assets.",
  async evaluate(q, now, limits) {
    const agents = new Map(
      (await q.all<AgentRow>('SELECT agent_id, last_seen_ts, state, state_ts, reason, version FROM fleet_agents')).map((a) => [a.agent_id, a]),
    );
    const rows = await q.all<{ agent_id: string; asset: string; last_seen_ts: number; last_reading_ts: number }>(
      'SELECT agent_id, asset, last_seen_ts, last_reading_ts FROM fleet_assets WHERE last_seen_ts <= ? ORDER BY agent_id, asset',
      [now - limits.assetSilentMs],
    );
    const out: FleetFinding[] = [];
    for (const r of rows) {
      const agent = agents.get(r.agent_id);
      if (!agent || offlineSince(agent, now, limits.agentOfflineMs) !== null || agent.state === 'offline') continue;
      const silent = Math.floor((now - r.last_seen_ts) / 60_000);
      out.push({
        subject: `${r.agent_id}/${r.asset}`,
        agentId: r.agent_id,
        asset: r.asset,
        title: `Asset ${r.asset} on ${r.agent_id} silent for ${silent} min`,
        value: silent,
        evidence: { lastSeen: new Date(r.last_seen_ts).toISOString(), lastReading: new Date(r.last_reading_ts).toISOString(), silentMinutes: silent },
      });
    }
    return out;
  },
};

/** Orders `1.10.0` after `1.9.2`, and a pre-release (`1.2.0-rc.1`) before its release; non-numeric parts as text. */
export function compareVersions(a: string, b: string): number {
  const [coreA = '', preA] = a.replace(/^v/, '').split(/-(.*)/s);
  const [coreB = '', preB] = b.replace(/^v/, '').split(/-(.*)/s);
  const pa = coreA.split('.');
  const pb = coreB.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    const d = /^\d+$/.test(x) && /^\d+$/.test(y) ? Number(x) - Number(y) : x.localeCompare(y);
    if (d !== 0) return Math.sign(d);
  }
  if (preA === undefined || preB === undefined) return preA === preB ? 0 : preA === undefined ? 1 : -1;
  return Math.sign(preA.localeCompare(preB, 'en', { numeric: true }));
}

const versionSkew: FleetRule = {
  name: 'version-skew',
  severity: 'warning',
  summary:
    "An online agent runs another version than the fleet's newest (the highest `agentVersion` any agent reported) longer than `versionSkewMs` after that version was first seen: a rollout that stopped part way.",
  evidence: 'version, newest, newestSince (ISO time), agentsOnNewest',
  remedy:
    'Finish or roll back the rollout (docs/rollout.md): see why this agent did not update (its rollout report, its log), or roll the canaries back to the version the rest of the fleet runs.',
  async evaluate(q, now, limits) {
    const rows = await q.all<AgentRow>(
      "SELECT agent_id, last_seen_ts, state, state_ts, reason, version FROM fleet_agents WHERE version IS NOT NULL AND version <> ''",
    );
    if (!rows.length) return [];
    // Remember when each version was first seen in the fleet: from the oldest status that reports it, once.
    const firstSeen = new Map<string, number>();
    for (const a of rows) firstSeen.set(a.version!, Math.min(firstSeen.get(a.version!) ?? Infinity, a.state_ts ?? a.last_seen_ts));
    for (const [version, ts] of firstSeen) {
      await q.run('INSERT INTO central_fleet_versions (version, first_seen_ts) VALUES (?, ?) ON CONFLICT (version) DO NOTHING', [version, ts]);
    }
    const newest = [...firstSeen.keys()].sort(compareVersions).at(-1)!;
    const since = (await q.get<{ first_seen_ts: number }>('SELECT first_seen_ts FROM central_fleet_versions WHERE version = ?', [newest]))!.first_seen_ts;
    if (now - since < limits.versionSkewMs) return [];
    const onNewest = rows.filter((a) => a.version === newest).length;
    const out: FleetFinding[] = [];
    for (const a of rows) {
      // An offline agent raises agent-offline; it cannot update until it is back.
      if (a.version === newest || a.state === 'offline' || offlineSince(a, now, limits.agentOfflineMs) !== null) continue;
      out.push({
        subject: a.agent_id,
        agentId: a.agent_id,
        asset: null,
        title: `Agent ${a.agent_id} runs ${a.version}, the fleet's newest is ${newest}`,
        value: null,
        evidence: { version: a.version, newest, newestSince: new Date(since).toISOString(), agentsOnNewest: onNewest },
      });
    }
    return out;
  },
};

export const FLEET_RULES: readonly FleetRule[] = [agentOffline, assetSilent, versionSkew];
