/**
 * An asset's state in the fleet view, from its latest risk per model and its active alerts (the words of Amazon
 * Monitron's asset workflow, plus `watch`):
 *
 * - `alarm`: an active alert of severity `critical` on the asset;
 * - `warning`: an active `warning` alert, or a model whose latest risk is at risk (the agent's own verdict against
 *   the model's operating threshold);
 * - `watch`: an active `info` alert, or a model within 20 % of its threshold on the risky side (relative risk ≥ 0.8);
 * - `healthy`: none of these, including an asset with no risk model and no alert.
 *
 * The relative risk puts models of every kind on one scale, 1 at the threshold and higher worse: score / threshold
 * for probabilities and anomaly scores, threshold / score for a remaining useful life (fewer cycles left is
 * worse). Without a threshold a probability is its own relative risk, and the other kinds rank 0.
 */

export type AssetState = 'healthy' | 'watch' | 'warning' | 'alarm';
export const ASSET_STATES: readonly AssetState[] = ['healthy', 'watch', 'warning', 'alarm'];
export const WATCH_RELATIVE_RISK = 0.8;

export interface RiskLike {
  kind: string;
  score: number;
  threshold: number | null;
  atRisk: boolean;
}

export function relativeRisk(r: RiskLike): number {
  if (r.threshold !== null && r.threshold > 0) {
    if (r.kind === 'rul') return r.score > 0 ? r.threshold / r.score : Number.MAX_VALUE;
    return r.score / r.threshold;
  }
  return r.kind === 'probability' ? r.score : 0;
}

export function assetState(risks: readonly RiskLike[], activeAlertSeverities: readonly string[]): AssetState {
  if (activeAlertSeverities.includes('critical')) return 'alarm';
  if (activeAlertSeverities.includes('warning') || risks.some((r) => r.atRisk)) return 'warning';
  if (activeAlertSeverities.length > 0 || risks.some((r) => relativeRisk(r) >= WATCH_RELATIVE_RISK)) return 'watch';
  return 'healthy';
}
