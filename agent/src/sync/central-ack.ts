import { ACK_MAX_RANGES } from '../contract/topics.js';
import { STREAMS, type StreamName } from '../store/outbox.js';

/** What the agent takes from the centre's acknowledgement (`topics.ack`), checked field by field. */
export interface CentralAck {
  ts: number;
  streams: Map<StreamName, { through: number; highest: number; missing: Array<[number, number]> }>;
}

const seqLike = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Parses an acknowledgement payload for `agentId`. Returns a reason string when it does not follow the
 * contract: the agent then ignores it (and keeps its rows), never acts on half of it.
 */
export function parseAck(payload: Buffer, agentId: string): CentralAck | string {
  if (!payload.length) return 'empty payload (a retained acknowledgement being cleared)';
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  if (o.agentId !== agentId) return `agentId ${JSON.stringify(o.agentId)} is not this agent's`;
  if (typeof o.ts !== 'number') return 'ts must be a number';
  if (!o.streams || typeof o.streams !== 'object' || Array.isArray(o.streams)) return 'streams must be an object';
  const streams: CentralAck['streams'] = new Map();
  for (const [name, raw] of Object.entries(o.streams as Record<string, unknown>)) {
    if (!(STREAMS as string[]).includes(name)) continue; // a stream a newer contract added: not ours to act on
    const st = raw as Record<string, unknown> | null;
    if (!st || typeof st !== 'object') return `streams.${name} must be an object`;
    if (!seqLike(st.through)) return `streams.${name}.through must be a non-negative integer`;
    if (!seqLike(st.highest) || st.highest < st.through) return `streams.${name}.highest must be an integer at least through`;
    const missing: Array<[number, number]> = [];
    if (st.missing !== undefined) {
      if (!Array.isArray(st.missing)) return `streams.${name}.missing must be an array`;
      for (const r of st.missing.slice(0, ACK_MAX_RANGES)) {
        if (!Array.isArray(r) || r.length !== 2 || !seqLike(r[0]) || !seqLike(r[1]) || r[0] > r[1] || r[0] <= st.through) {
          return `streams.${name}.missing holds a range that is not [from, to] above through`;
        }
        missing.push([r[0], r[1]]);
      }
    }
    streams.set(name as StreamName, { through: st.through, highest: st.highest, missing });
  }
  return { ts: o.ts, streams };
}
