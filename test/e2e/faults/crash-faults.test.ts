import { describe, expect, it } from 'vitest';
import { cleanupAfterEach } from '../../helpers/cleanup.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { waitFor } from '../../helpers/wait.js';
import { SOAK, agentPending, settleAndAccount, sleep, startRig } from './fault-rig.js';

/**
 * Fault suite, crash side: the real agent is killed with SIGKILL at seeded random moments, many times over,
 * some while it only writes (the link is cut) and some while it drains a backlog to the broker. Every committed
 * record must still arrive exactly once after deduplication, in order.
 */

const cleanup = cleanupAfterEach();
/** 8 in `npm test`; the soak mode (FOREWARN_SOAK=1) kills it 100 times. */
const KILLS = SOAK ? 100 : 8;

describe('delivery under SIGKILL', () => {
  it(
    `accounts for every record after ${KILLS} kills while writing and while sending`,
    async () => {
      const rig = await startRig('fault-kill');
      cleanup.push(() => rig.close());
      const random = seededRandom(20261123);
      const moments: string[] = [];
      for (let i = 0; i < KILLS; i++) {
        const writingOnly = i % 2 === 0;
        if (writingOnly) rig.proxy.cut();
        else rig.proxy.restore();
        const agent = rig.startAgent();
        if (writingOnly) {
          // Let it get going (model loaded, records committing), then kill it somewhere in the next second and a half.
          await waitFor(() => agent.logs().some((l) => l.msg === 'agent starting'), 'the agent to start', 30_000);
          await sleep(500 + Math.floor(random() * 1500));
        } else {
          // It connects with the previous round's backlog to send: kill it within the first few batches.
          await waitFor(
            () => agent.logs().some((l) => String(l.msg).startsWith('broker reachable again') || l.msg === 'connected to the broker'),
            'the agent to connect',
            30_000,
          );
          await sleep(Math.floor(random() * 40));
        }
        const pendingAtKill = agentPending(rig);
        moments.push(`${writingOnly ? 'writing' : 'sending'} (${pendingAtKill} buffered)`);
        await rig.kill(agent);
        expect(agent.proc.signalCode).toBe('SIGKILL');
      }
      rig.proxy.restore();
      const last = rig.startAgent();
      const books = await settleAndAccount(rig, last);
      const telemetry = books.find((b) => b.stream === 'telemetry')!;
      if (process.env.FOREWARN_FAULT_VERBOSE) console.log(moments, books);
      expect(telemetry.committed, moments.join(', ')).toBeGreaterThan(300);
      expect(books.reduce((n, b) => n + b.dropped, 0)).toBe(0);
      // Each start was a new boot, and the subscriber saw the restarts.
      const bootOf = (a: (typeof rig.agents)[number]) => Number(a.logs().find((l) => l.msg === 'agent starting')!.bootSeq);
      expect(bootOf(last)).toBe(bootOf(rig.agents[0]!) + KILLS);
    },
    SOAK ? 1_800_000 : 180_000,
  );
});
