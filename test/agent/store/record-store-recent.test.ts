import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RecordStore } from '../../../agent/src/store/record-store.js';
import type { BatchRequest, OutboxBatch, StreamName } from '../../../agent/src/store/outbox.js';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { incompressible, seededRandom } from '../../helpers/seeded-random.js';
import { fillUp, tmpfsForTest } from '../../helpers/tmpfs.js';

// The store hands the rows of its latest commits to nextBatch from memory (`recent`), not from SQLite. What it hands
// out must be exactly what SQLite holds: checked here against a second store opened afresh on the same file, which
// has nothing in memory and reads every row and acknowledgement back, after every step of a random run of appends, batches,
// acknowledgements, purges, drops, rollbacks on a full file (or a full file system) and reconnections.

const cleanup = cleanupAfterEach();
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
function freshDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'fw-store-recent-'));
  dirs.push(d);
  return path.join(d, 'data');
}

const STREAMS: StreamName[] = ['telemetry', 'risk', 'events', 'alerts'];
const request = (cursors: Map<StreamName, number>): BatchRequest => ({ maxRecords: 8, maxBytes: 4096, cursors, liveFrom: new Map() });
const plain = (b: OutboxBatch | null) => b && { ...b, records: b.records.map((r) => ({ ...r })) };

/** The batch a store with nothing in memory reads from the same file for the same request. */
function fromDisk(dir: string, req: BatchRequest): OutboxBatch | null {
  const other = new RecordStore({ dir });
  try {
    return other.nextBatch(req);
  } finally {
    other.close();
  }
}

describe('RecordStore: rows of the latest commits handed out from memory', () => {
  it('hands out the rows just committed without reading them back, the same rows SQLite holds', () => {
    const dir = freshDir();
    const store = new RecordStore({ dir, ackCommitDelayMs: 0 });
    try {
      const cursors = new Map<StreamName, number>();
      for (let i = 0; i < 5; i++) {
        // A deflated payload (over 256 bytes) and a short one: both come back as their JSON text.
        store.append([
          { stream: 'telemetry', ts: 1000 + i, asset: 'host', payload: { i, pad: 'x'.repeat(300) } },
          { stream: 'risk', ts: 1000 + i, asset: 'host', payload: { i } },
        ]);
        for (const stream of ['risk', 'telemetry'] as const) {
          const want = fromDisk(dir, request(cursors));
          const got = store.nextBatch(request(cursors));
          expect(got?.stream).toBe(stream);
          expect(plain(got)).toEqual(plain(want));
          // From memory: the rows as committed, frozen so no reader can change them for the next.
          expect(got!.records.every((r) => Object.isFrozen(r))).toBe(true);
          cursors.set(stream, got!.records[got!.records.length - 1]!.seq);
        }
        expect(store.nextBatch(request(cursors))).toBeNull();
      }
    } finally {
      store.close();
    }
  });

  /**
   * A random run against `store` (in `dir`), every batch compared with what a second store opened afresh reads from
   * the file. Full, one of two ways: a file capped at a page count (SQLite refuses the page an INSERT needs, inside
   * the transaction), or with `disk`, a real file system filled to its last block by another file (the commit's
   * WAL write fails, as on a full disk in the field). Returns how many batches came from memory and how many writes
   * rolled back.
   */
  function randomRun(seed: number, dir: string, store: RecordStore, disk?: { fill(): void; free(): void }) {
    const rnd = seededRandom(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const cursors = new Map<StreamName, number>();
    const handedOut: Array<{ stream: StreamName; seqs: number[] }> = [];
    let ts = 1_000_000;
    let served = 0;
    let rolledBack = 0;
    let full = false;
    // A write refused for lack of space rolls back, and is counted.
    const tryWrite = (write: () => unknown) => {
      try {
        write();
      } catch {
        rolledBack++;
      }
    };
    // Rows dropped to make room, in flight ones kept; on a file this full the drop's own notice may not fit, and
    // the drop rolls back too.
    const drop = (share: number) => tryWrite(() => store.enforceQuota({ maxBytes: Math.floor(store.usage().usedBytes * share), minFreeBytes: 0 }, cursors));
    for (let step = 0; step < 600; step++) {
      const op = rnd();
      if (op < 0.4) {
        const items = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => {
          const stream = pick(STREAMS);
          // Incompressible padding of varying size: the cap is reached, and deflate cannot dodge it.
          const pad = rnd() < 0.7 ? incompressible(300 + Math.floor(rnd() * 1500), step) : '';
          return { stream, ts: ts++, asset: pick(['a', 'b']), payload: { step, pad } };
        });
        try {
          store.append(items);
        } catch {
          rolledBack++;
          drop(0.6);
        }
      } else if (op < 0.75) {
        const got = store.nextBatch(request(cursors));
        // The second store needs room to open; the acknowledgements the full disk refused are written first.
        if (full) disk!.free();
        if (disk) store.commitMarks();
        const want = fromDisk(dir, request(cursors));
        if (full) disk!.fill();
        expect(plain(got), `seed ${seed}, step ${step}`).toEqual(plain(want));
        if (got) {
          if (Object.isFrozen(got.records[0])) served++;
          cursors.set(got.stream, got.records[got.records.length - 1]!.seq);
          handedOut.push({ stream: got.stream, seqs: got.records.map((r) => r.seq) });
        }
      } else if (op < 0.85 && handedOut.length) {
        // The oldest batch in flight is acknowledged: by the broker, or by the broker and then the centre. In
        // order, as PUBACKs come: a watermark that moved out of order is not saved (the second store could not know it).
        const b = handedOut.shift()!;
        if (rnd() < 0.5) tryWrite(() => store.markSent(b.stream, b.seqs));
        else {
          // Each applies in memory before its write can fail: the centre's confirmation follows even when the
          // PUBACK's mark did not reach the disk, as in the sync.
          tryWrite(() => store.markPublished(b.stream, b.seqs));
          tryWrite(() => store.confirm(b.stream, Math.max(...b.seqs)));
        }
      } else if (op < 0.9) {
        tryWrite(() => store.purgeSent(Number.MAX_SAFE_INTEGER, 1 + Math.floor(rnd() * 20)));
      } else if (op < 0.95) {
        // The connection drops: cursors go back, what was in flight is handed out again.
        cursors.clear();
        handedOut.length = 0;
      } else if (disk && rnd() < 0.5) {
        // Another program fills the disk, or gives its space back.
        if (full) disk.free();
        else disk.fill();
        full = !full;
      } else {
        drop(0.8);
      }
    }
    if (full) disk!.free();
    return { served, rolledBack };
  }

  it('matches SQLite after every step of a random run of appends, batches, acknowledgements, purges, drops and rollbacks', () => {
    for (const seed of [1, 2, 3]) {
      // A file capped at 32 pages (64 KiB): appends fail as on a full disk and roll back; drops free room.
      const dir = freshDir();
      const store = new RecordStore({ dir, ackCommitDelayMs: 0, maxPages: 32 });
      try {
        const { served, rolledBack } = randomRun(seed, dir, store);
        // The run went through the paths it is meant to: rows from memory, and commits rolled back.
        expect(served, `seed ${seed}`).toBeGreaterThan(10);
        expect(rolledBack, `seed ${seed}`).toBeGreaterThan(0);
      } finally {
        store.close();
      }
    }
  });

  it('matches SQLite through the same run on a real file system that another program fills to the last block', (ctx) => {
    const fsDir = tmpfsForTest(ctx, 8, cleanup);
    const filler = path.join(fsDir, 'neighbour.bin');
    const disk = { fill: () => void fillUp(fsDir, 'neighbour.bin'), free: () => rmSync(filler, { force: true }) };
    for (const seed of [1, 2, 3]) {
      const dir = path.join(fsDir, `data-${seed}`);
      const store = new RecordStore({ dir, ackCommitDelayMs: 0 });
      try {
        const { served, rolledBack } = randomRun(seed, dir, store, disk);
        expect(served, `seed ${seed}`).toBeGreaterThan(10);
        // Commits refused by the file system itself (the WAL cannot grow), not by a page cap.
        expect(rolledBack, `seed ${seed}`).toBeGreaterThan(0);
      } finally {
        store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
