/**
 * What the host is (OS, hardware model, CPU, memory), from systeminformation, once at start: logged as
 * `host inventory`.
 *
 * It runs in a short-lived node process of its own. Loaded into the agent, systeminformation's code stayed resident
 * for the life of the daemon, about 3.5 MiB of the host-only agent's RSS (scripts/measure-rss.sh, docs/benchmarks.md),
 * for one log line; it spawns processes of its own anyway. Parts that cannot be read are left out.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import type { Systeminformation } from 'systeminformation';

const execFileAsync = promisify(execFile);

/** The four systeminformation calls, each its value or null where it failed. */
type Parts = [Systeminformation.OsData | null, Systeminformation.SystemData | null, Systeminformation.CpuData | null, Systeminformation.MemData | null];

/** The child's program: CommonJS, given the resolved path of systeminformation so that it needs no module lookup. */
function childScript(modulePath: string): string {
  return [
    `const si = require(${JSON.stringify(modulePath)});`,
    'Promise.allSettled([si.osInfo(), si.system(), si.cpu(), si.mem()])',
    "  .then((r) => process.stdout.write(JSON.stringify(r.map((x) => (x.status === 'fulfilled' ? x.value : null)))));",
  ].join('\n');
}

export async function hostInventory(timeoutMs = 30_000): Promise<Record<string, string | number>> {
  const modulePath = createRequire(import.meta.url).resolve('systeminformation');
  const { stdout } = await execFileAsync(process.execPath, ['-e', childScript(modulePath)], { timeout: timeoutMs, maxBuffer: 1 << 20 });
  const parts = JSON.parse(stdout) as unknown;
  if (!Array.isArray(parts) || parts.length !== 4) throw new Error(`unexpected inventory output: ${stdout.slice(0, 200)}`);
  return inventoryOf(parts as Parts);
}

/** The inventory's keys, from what systeminformation returned. */
export function inventoryOf([os, sys, cpu, mem]: Parts): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  const put = (key: string, v: unknown): void => {
    if (typeof v === 'number' && Number.isFinite(v)) out[key] = v;
    else if (typeof v === 'string' && v.trim() !== '') out[key] = v.trim();
    else if (typeof v === 'boolean') out[key] = v ? 'true' : 'false';
  };
  if (os) {
    put('os.platform', os.platform);
    put('os.distro', os.distro);
    put('os.release', os.release);
    put('os.kernel', os.kernel);
    put('os.arch', os.arch);
    put('os.hostname', os.hostname);
  }
  if (sys) {
    put('system.manufacturer', sys.manufacturer);
    put('system.model', sys.model);
    put('system.virtual', sys.virtual);
  }
  if (cpu) {
    put('cpu.manufacturer', cpu.manufacturer);
    put('cpu.brand', cpu.brand);
    put('cpu.cores', cpu.cores);
    put('cpu.physical_cores', cpu.physicalCores);
    put('cpu.speed_ghz', cpu.speed || undefined); // 0 means unknown
  }
  if (mem) put('memory.total_bytes', mem.total);
  return out;
}
