/**
 * The node stream's frames (docs/firmware-protocol.md):
 *
 *   wire:    COBS( header ‖ CBOR body ‖ CRC-32 little-endian ) 0x00
 *   header:  version (high nibble major, low nibble minor; 0x10 = 1.0) · message type · sequence (0…255)
 *   CRC-32:  over header ‖ body (IEEE 802.3 / zlib)
 *
 * FrameDecoder takes bytes in chunks of any size (serial reads, TCP segments, UDP datagrams), finds frames at
 * each 0x00, checks them in order (COBS → size → CRC → version → CBOR → message type → message schema) and
 * emits the good ones. Every non-empty frame lands in exactly one counter, so the counters add up to `frames`.
 * Memory is bounded: one buffer of the largest encoded frame, reused.
 */
import { cobsDecodeInto, cobsEncode, cobsMaxEncodedLength } from './cobs.js';
import { crc32 } from './crc32.js';
import { type CborDecodeOptions, type CborValue, decodeCbor, encodeCbor } from './cbor.js';
import { type HealthRecord, type SenmlRecord, resolveSenml, senmlToHealth } from './senml.js';
import { type BlockChunk, parseChunk } from './block-assembler.js';

export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 0;
export const PROTOCOL_VERSION_BYTE = (PROTOCOL_MAJOR << 4) | PROTOCOL_MINOR;

export const MESSAGE_TYPE = { senml: 0x01, health: 0x02, chunk: 0x03 } as const;
export type MessageTypeName = keyof typeof MESSAGE_TYPE;

export const HEADER_BYTES = 3;
export const CRC_BYTES = 4;
/** Largest frame before COBS (header + body + CRC). */
export const MAX_FRAME_BYTES = 1024;
/** Largest CBOR body. */
export const MAX_BODY_BYTES = MAX_FRAME_BYTES - HEADER_BYTES - CRC_BYTES;

/** header ‖ body ‖ CRC, before COBS. */
export function encodeRawFrame(type: number, seq: number, body: Uint8Array, versionByte = PROTOCOL_VERSION_BYTE): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + body.length + CRC_BYTES);
  out[0] = versionByte;
  out[1] = type;
  out[2] = seq & 0xff;
  out.set(body, HEADER_BYTES);
  const crc = crc32(out, 0, HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(HEADER_BYTES + body.length, crc, true);
  return out;
}

/**
 * A complete frame as it goes on the wire: COBS-encoded, with its 0x00 delimiter. `body` is a CBOR value, or
 * a Uint8Array taken as an already-encoded body (so a byte-string body must be wrapped in an array or map).
 */
export function encodeFrame(type: number, seq: number, body: CborValue | Uint8Array, versionByte = PROTOCOL_VERSION_BYTE): Uint8Array {
  const bytes = body instanceof Uint8Array ? body : encodeCbor(body);
  const enc = cobsEncode(encodeRawFrame(type, seq, bytes, versionByte));
  const out = new Uint8Array(enc.length + 1);
  out.set(enc);
  return out;
}

interface MessageBase {
  /** The version byte (major << 4 | minor). */
  version: number;
  seq: number;
}
export type NodeMessage =
  | (MessageBase & { type: 'senml'; baseName: string; records: SenmlRecord[] })
  | (MessageBase & { type: 'health'; baseName: string; health: HealthRecord; records: SenmlRecord[] })
  | (MessageBase & { type: 'chunk'; chunk: BlockChunk });

export interface FrameCounters {
  /** Bytes fed in. */
  bytes: number;
  /** Non-empty frames seen (delimited, or cut off by flush/oversize): the sum of the outcomes below. */
  frames: number;
  /** Decoded and delivered. */
  ok: number;
  /** Not valid COBS. */
  badCobs: number;
  /** Encoded or decoded frame beyond the maximum frame size; its bytes were skipped up to the next 0x00. */
  oversize: number;
  /** Shorter than header + 1 body byte + CRC. */
  runt: number;
  badCrc: number;
  /** Major version other than 1 (counted, frame dropped). */
  unknownVersion: number;
  /** Body is not one well-formed CBOR item of the subset. */
  badCbor: number;
  /** Known major version, unknown message type (dropped: a newer minor version may add types). */
  unknownType: number;
  /** CBOR fine, message schema not (missing or mistyped fields). */
  badMessage: number;
  /** A partial frame left when flush() ended the stream or datagram. */
  truncated: number;
  /** Delimiters with no frame bytes before them (idle line, leading 0x00): not frames. */
  empty: number;
  /** Sequence numbers skipped between consecutive frames that passed the CRC (an estimate of frames lost). */
  seqGaps: number;
}

export type FrameOutcome = Exclude<keyof FrameCounters, 'bytes' | 'frames' | 'empty' | 'seqGaps'>;

export interface FrameDecoderOptions {
  /** Largest frame before COBS. Default MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
  /** Clock for SenML relative times, seconds since the epoch. Default Date.now() / 1000. */
  now?: () => number;
  cbor?: CborDecodeOptions;
  /** Called with the error text of each rejected frame (diagnostics; optional). */
  onReject?: (outcome: FrameOutcome, detail: string) => void;
}

export class FrameDecoder {
  private readonly maxFrame: number;
  private readonly maxEncoded: number;
  private readonly acc: Uint8Array;
  private readonly frame: Uint8Array;
  private accLen = 0;
  private discarding = false;
  private lastSeq: number | null = null;
  private readonly now: () => number;
  private readonly cborOptions: CborDecodeOptions;
  private readonly onReject: ((outcome: FrameOutcome, detail: string) => void) | undefined;
  private readonly c: FrameCounters = {
    bytes: 0,
    frames: 0,
    ok: 0,
    badCobs: 0,
    oversize: 0,
    runt: 0,
    badCrc: 0,
    unknownVersion: 0,
    badCbor: 0,
    unknownType: 0,
    badMessage: 0,
    truncated: 0,
    empty: 0,
    seqGaps: 0,
  };

  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrame = Math.max(HEADER_BYTES + CRC_BYTES + 1, options.maxFrameBytes ?? MAX_FRAME_BYTES);
    this.maxEncoded = cobsMaxEncodedLength(this.maxFrame);
    this.acc = new Uint8Array(this.maxEncoded);
    this.frame = new Uint8Array(this.maxFrame);
    this.now = options.now ?? (() => Date.now() / 1000);
    this.cborOptions = options.cbor ?? {};
    this.onReject = options.onReject;
  }

  get counters(): Readonly<FrameCounters> {
    return this.c;
  }

  /** Bytes held of an unfinished frame (at most the largest encoded frame). */
  get bufferedBytes(): number {
    return this.accLen;
  }

  /** Feeds bytes; returns the messages of the frames they complete. */
  push(chunk: Uint8Array): NodeMessage[] {
    const out: NodeMessage[] = [];
    this.c.bytes += chunk.length;
    let pos = 0;
    while (pos < chunk.length) {
      const z = chunk.indexOf(0, pos);
      const end = z < 0 ? chunk.length : z;
      const n = end - pos;
      if (this.discarding) {
        // Skipping the rest of an oversize frame.
      } else if (this.accLen + n > this.maxEncoded) {
        this.discarding = true;
        this.accLen = 0;
      } else if (z >= 0 && this.accLen === 0) {
        // The whole frame is in this chunk: decode in place, no copy.
        if (n > 0) this.decode(chunk, pos, end, out);
        else this.c.empty++;
      } else {
        this.acc.set(chunk.subarray(pos, end), this.accLen);
        this.accLen += n;
        if (z >= 0) {
          this.decode(this.acc, 0, this.accLen, out);
          this.accLen = 0;
        }
      }
      if (z < 0) break;
      if (this.discarding) {
        this.discarding = false;
        this.reject('oversize', `frame longer than ${this.maxEncoded} encoded bytes`);
      }
      pos = z + 1;
    }
    return out;
  }

  /** Ends the stream or the datagram: an unfinished frame counts as truncated. */
  flush(): void {
    if (this.accLen > 0) this.reject('truncated', `${this.accLen} bytes without a delimiter`);
    else if (this.discarding) this.reject('oversize', `frame longer than ${this.maxEncoded} encoded bytes`);
    this.accLen = 0;
    this.discarding = false;
  }

  /** Forgets the partial frame and the sequence history (e.g. after reopening the port). */
  reset(): void {
    this.accLen = 0;
    this.discarding = false;
    this.lastSeq = null;
  }

  private reject(outcome: FrameOutcome, detail: string): void {
    this.c.frames++;
    this.c[outcome]++;
    this.onReject?.(outcome, detail);
  }

  private decode(src: Uint8Array, start: number, end: number, out: NodeMessage[]): void {
    const r = cobsDecodeInto(src, this.frame, start, end);
    if (!r.ok) return this.reject(r.error === 'too-long' ? 'oversize' : 'badCobs', r.error);
    const f = this.frame;
    const len = r.length;
    if (len < HEADER_BYTES + 1 + CRC_BYTES) return this.reject('runt', `${len} bytes`);
    const bodyEnd = len - CRC_BYTES;
    const sent = (f[bodyEnd]! | (f[bodyEnd + 1]! << 8) | (f[bodyEnd + 2]! << 16) | (f[bodyEnd + 3]! << 24)) >>> 0;
    if (crc32(f, 0, bodyEnd) !== sent) return this.reject('badCrc', 'CRC-32 mismatch');
    const version = f[0]!;
    if (version >> 4 !== PROTOCOL_MAJOR) return this.reject('unknownVersion', `version byte 0x${version.toString(16).padStart(2, '0')}`);
    const type = f[1]!;
    const seq = f[2]!;
    // The sequence number of any frame past the CRC and version checks is trustworthy, whatever its body.
    if (this.lastSeq !== null) this.c.seqGaps += (seq - this.lastSeq - 1) & 0xff;
    this.lastSeq = seq;
    const body = decodeCbor(f, this.cborOptions, HEADER_BYTES, bodyEnd);
    if (!body.ok) return this.reject('badCbor', `${body.error} at byte ${body.offset - HEADER_BYTES}`);
    let msg: NodeMessage;
    if (type === MESSAGE_TYPE.senml || type === MESSAGE_TYPE.health) {
      const s = resolveSenml(body.value, this.now());
      if (!s.ok) return this.reject('badMessage', s.error);
      if (type === MESSAGE_TYPE.senml) msg = { type: 'senml', version, seq, baseName: s.baseName, records: s.records };
      else {
        const h = senmlToHealth(s.records, s.baseName);
        if (!h.ok) return this.reject('badMessage', h.error);
        msg = { type: 'health', version, seq, baseName: s.baseName, health: h.health, records: s.records };
      }
    } else if (type === MESSAGE_TYPE.chunk) {
      const c = parseChunk(body.value, this.now());
      if (!c.ok) return this.reject('badMessage', c.error);
      msg = { type: 'chunk', version, seq, chunk: c.chunk };
    } else {
      return this.reject('unknownType', `message type 0x${type.toString(16).padStart(2, '0')}`);
    }
    this.c.frames++;
    this.c.ok++;
    out.push(msg);
  }
}
