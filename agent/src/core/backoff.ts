/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so a fleet that lost the
 * same broker spreads its reconnects out instead of stampeding it, and no attempt comes back instantly.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
