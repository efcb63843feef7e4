/**
 * An asset's state in the fleet view, from its latest risk per model, its active alerts and what technicians did
 * about them (the words of Amazon Monitron's asset workflow, plus `watch`), first match wins:
 *
 * - `maintenance`: an active alert of the asset is in maintenance and its `until` has not passed (someone is
 *   working on the asset: new alerts on it are expected, and Alertmanager silences them all);
 * - `acknowledged`: someone acknowledged an active alert of the asset and no warning or critical alert is left
 *   unacknowledged (the asset needs no one else's attention);
 * - `alarm`: an active alert of severity `critical` on the asset;
 * - `warning`: an active `warning` alert, or a model whose latest risk is at risk (the agent's own verdict against
 *   the model's operating threshold);
 * - `watch`: an active `info` alert, or a model within 20 % of its threshold on the risky side (relative risk ≥ 0.8);
 * - `healthy`: none of these, including an asset with no risk model and no alert.
 *
 * An alert a technician resolved or marked a false alarm no longer counts, even while its agent still reports it
 * active; one whose maintenance window passed counts as if no one had acted on it (its silence is over too).
 * ASSET_STATES lists the severity scale first (healthy … alarm) and then the workflow states, which sit outside it.
 *
 * The relative risk puts models of every kind on one scale, 1 at the threshold and higher worse: score / threshold
 * for probabilities and anomaly scores, threshold / score for a remaining useful life (fewer cycles left is
 * worse). Without a threshold a probability is its own relative risk, and the other kinds rank 0.
 */

export type AssetState = 'healthy' | 'watch' | 'warning' | 'alarm' | 'acknowledged' | 'maintenance';
export const ASSET_STATES: readonly AssetState[] = ['healthy', 'watch', 'warning', 'alarm', 'acknowledged', 'maintenance'];
export const WATCH_RELATIVE_RISK = 0.8;

export interface RiskLike {
  kind: string;
  score: number;
  threshold: number | null;
  atRisk: boolean;
}

/** An active alert: its severity and, when someone acted on its episode, the workflow state (alert_workflow). */
export interface AlertLike {
  severity: string;
  workflow?: string | null;
  /** The end of a maintenance window (ms). */
  until?: number | null;
}

export function relativeRisk(r: RiskLike): number {
  if (r.threshold !== null && r.threshold > 0) {
    if (r.kind === 'rul') return r.score > 0 ? r.threshold / r.score : Number.MAX_VALUE;
    return r.score / r.threshold;
  }
  return r.kind === 'probability' ? r.score : 0;
}

/** `activeAlerts`: the asset's active alerts (a bare severity is an alert no one acted on). */
export function assetState(risks: readonly RiskLike[], activeAlerts: readonly (string | AlertLike)[], now: number = Date.now()): AssetState {
  const open: string[] = [];
  let acknowledged = false;
  for (const x of activeAlerts) {
    const a = typeof x === 'string' ? { severity: x } : x;
    const wf = a.workflow ?? null;
    if (wf === 'resolved' || wf === 'false_alarm') continue;
    if (wf === 'maintenance' && (a.until ?? 0) > now) return 'maintenance';
    if (wf === 'acknowledged') acknowledged = true;
    else open.push(a.severity);
  }
  if (acknowledged && !open.includes('critical') && !open.includes('warning')) return 'acknowledged';
  if (open.includes('critical')) return 'alarm';
  if (open.includes('warning') || risks.some((r) => r.atRisk)) return 'warning';
  if (open.length > 0 || risks.some((r) => relativeRisk(r) >= WATCH_RELATIVE_RISK)) return 'watch';
  return 'healthy';
}
