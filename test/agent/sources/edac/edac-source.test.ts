import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../../../agent/src/core/types.js';
import { DEFAULT_EDAC_SOURCE_CONFIG, EdacReader, EdacSource, type SysfsReader, parseCounter } from '../../../../agent/src/sources/edac/edac-source.js';
import { SourceUnavailableError } from '../../../../agent/src/sources/interval-source.js';
import { captureLogger } from '../../../helpers/capture-logger.js';
import { seededRandom as rng } from '../../../helpers/seeded-random.js';

const FIXTURES = fileURLToPath(new URL('../sysfs-fixtures/', import.meta.url));
const fx = (rel: string) => path.join(FIXTURES, rel);
const T0 = 1_700_000_000_000;

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
function copyOf(tree: string): string {
  const d = mkdtempSync(path.join(tmpdir(), 'fw-edac-'));
  dirs.push(d);
  cpSync(fx(tree), d, { recursive: true });
  return d;
}

describe('parseCounter', () => {
  it('accepts one non-negative integer and nothing else', () => {
    expect(parseCounter('152\n')).toBe(152);
    expect(parseCounter('0')).toBe(0);
    for (const bad of ['', '-1', 'twelve', '1.5', '12 13', '99999999999999999999999', '\u0000\u00ff']) expect(parseCounter(bad), bad).toBeNull();
  });
});

describe('EdacReader on sysfs trees', () => {
  it('Intel Xeon Scalable (skx_edac): per-controller and per-DIMM counters, labels sanitised', async () => {
    const s = await new EdacReader(fx('edac-skx')).read();
    expect(s.problems).toEqual([]);
    expect(s.metrics).toEqual({
      'edac.mc0.ce_count': 0,
      'edac.mc0.ue_count': 0,
      'edac.mc0.ce_noinfo_count': 0,
      'edac.mc0.ue_noinfo_count': 0,
      'edac.dimm.cpu_srcid_0_mc_0_chan_0_dimm_0.ce_count': 0,
      'edac.dimm.cpu_srcid_0_mc_0_chan_0_dimm_0.ue_count': 0,
      'edac.dimm.cpu_srcid_0_mc_0_chan_1_dimm_0.ce_count': 0,
      'edac.dimm.cpu_srcid_0_mc_0_chan_1_dimm_0.ue_count': 0,
      'edac.mc1.ce_count': 155,
      'edac.mc1.ue_count': 0,
      'edac.mc1.ce_noinfo_count': 0,
      'edac.mc1.ue_noinfo_count': 0,
      'edac.dimm.cpu_srcid_0_mc_1_chan_0_dimm_0.ce_count': 152,
      'edac.dimm.cpu_srcid_0_mc_1_chan_0_dimm_0.ue_count': 0,
      'edac.dimm.cpu_srcid_0_mc_1_chan_1_dimm_0.ce_count': 3,
      'edac.dimm.cpu_srcid_0_mc_1_chan_1_dimm_0.ue_count': 0,
      'edac.mc2.ce_count': 0,
      'edac.mc2.ue_count': 0,
      'edac.mc2.ce_noinfo_count': 0,
      'edac.mc2.ue_noinfo_count': 0,
      'edac.dimm.cpu_srcid_1_mc_0_chan_0_dimm_0.ce_count': 0,
      'edac.dimm.cpu_srcid_1_mc_0_chan_0_dimm_0.ue_count': 0,
      'edac.dimm.cpu_srcid_1_mc_0_chan_1_dimm_0.ce_count': 0,
      'edac.dimm.cpu_srcid_1_mc_0_chan_1_dimm_0.ue_count': 0,
      'edac.mc3.ce_count': 0,
      'edac.mc3.ue_count': 1,
      'edac.mc3.ce_noinfo_count': 0,
      'edac.mc3.ue_noinfo_count': 0,
      'edac.dimm.cpu_srcid_1_mc_1_chan_0_dimm_0.ce_count': 0,
      'edac.dimm.cpu_srcid_1_mc_1_chan_0_dimm_0.ue_count': 1,
      'edac.dimm.cpu_srcid_1_mc_1_chan_1_dimm_0.ce_count': 0,
      'edac.dimm.cpu_srcid_1_mc_1_chan_1_dimm_0.ue_count': 0,
      'edac.ce_count_total': 155,
      'edac.ue_count_total': 1,
    });
    expect(s.inventory[0]).toEqual({ mc: 'mc0', name: 'Skylake Socket#0 IMC#0', sizeMb: 65536 });
    expect(s.inventory[1]).toEqual({
      dimm: 'mc0/dimm0',
      label: 'CPU_SrcID#0_MC#0_Chan#0_DIMM#0',
      metricLabel: 'cpu_srcid_0_mc_0_chan_0_dimm_0',
      location: 'channel 0 slot 0',
      sizeMb: 32768,
      memType: 'Registered-DDR4',
    });
  });

  it('AMD EPYC (amd64_edac): rank directories with blank labels, plus the legacy csrow layout', async () => {
    const s = await new EdacReader(fx('edac-amd')).read();
    expect(s.problems).toEqual([]);
    expect(s.metrics).toEqual({
      'edac.mc0.ce_count': 7,
      'edac.mc0.ue_count': 0,
      'edac.mc0.ce_noinfo_count': 0,
      'edac.mc0.ue_noinfo_count': 0,
      'edac.dimm.mc0_rank0.ce_count': 5,
      'edac.dimm.mc0_rank0.ue_count': 0,
      'edac.dimm.mc0_rank1.ce_count': 2,
      'edac.dimm.mc0_rank1.ue_count': 0,
      'edac.dimm.mc0_rank2.ce_count': 0,
      'edac.dimm.mc0_rank2.ue_count': 0,
      'edac.dimm.mc0_rank3.ce_count': 0,
      'edac.dimm.mc0_rank3.ue_count': 0,
      'edac.mc0.csrow0.ce_count': 7,
      'edac.mc0.csrow0.ue_count': 0,
      'edac.mc0.csrow0.ch0.ce_count': 5,
      'edac.mc0.csrow0.ch1.ce_count': 2,
      'edac.mc0.csrow1.ce_count': 0,
      'edac.mc0.csrow1.ue_count': 0,
      'edac.mc0.csrow1.ch0.ce_count': 0,
      'edac.mc0.csrow1.ch1.ce_count': 0,
      'edac.ce_count_total': 7,
      'edac.ue_count_total': 0,
    });
  });

  it('an old kernel with csrows only and no noinfo counters', async () => {
    const s = await new EdacReader(fx('edac-csrow-legacy')).read();
    expect(s.problems).toEqual([]);
    expect(s.metrics).toEqual({
      'edac.mc0.ce_count': 3,
      'edac.mc0.ue_count': 0,
      'edac.mc0.csrow0.ce_count': 3,
      'edac.mc0.csrow0.ue_count': 0,
      'edac.mc0.csrow0.ch0.ce_count': 3,
      'edac.mc0.csrow0.ch1.ce_count': 0,
      'edac.mc0.csrow1.ce_count': 0,
      'edac.mc0.csrow1.ue_count': 0,
      'edac.mc0.csrow1.ch0.ce_count': 0,
      'edac.mc0.csrow1.ch1.ce_count': 0,
      'edac.ce_count_total': 3,
      'edac.ue_count_total': 0,
    });
  });

  it('garbage files are problems, never exceptions; colliding labels get a suffix', async () => {
    const s = await new EdacReader(fx('edac-broken')).read();
    expect(s.metrics).toEqual({
      'edac.mc0.ue_count': 0,
      'edac.dimm.dimm_a1.ce_count': 4,
      'edac.dimm.dimm_a1_2.ce_count': 1,
      'edac.dimm.dimm_a1_2.ue_count': 0,
      'edac.dimm.dimm_b2.ue_count': 0,
      'edac.ue_count_total': 0,
    });
    const rel = s.problems.map((p) => p.replace(fx('edac-broken'), ''));
    expect(rel).toEqual([
      '/devices/system/edac/mc/mc0/ce_count: not a counter',
      '/devices/system/edac/mc/mc0/ce_noinfo_count: not a counter',
      '/devices/system/edac/mc/mc0/dimm0/dimm_ue_count: not a counter',
      '/devices/system/edac/mc/mc0/dimm2: no dimm_ce_count',
      '/devices/system/edac/mc/mc0/dimm3/dimm_ce_count: not a counter',
    ]);
  });

  it('no EDAC directory, or one without controllers: unavailable', async () => {
    await expect(new EdacReader(fx('aer-server')).read()).rejects.toBeInstanceOf(SourceUnavailableError);
    await expect(new EdacReader(fx('edac-no-mc')).read()).rejects.toThrow(/no EDAC memory controller/);
  });
});

describe('EdacSource', () => {
  it('one Reading for the host, inventory logged once, counters follow the files', async () => {
    const root = copyOf('edac-skx');
    const logs = captureLogger();
    const src = new EdacSource({ sysRoot: root, asset: 'gpu-node-7' }, () => {}, logs.log);
    const first = await src.collect(T0);
    expect(first.readings).toHaveLength(1);
    expect(first.readings[0]).toMatchObject({ ts: T0, source: 'edac', asset: 'gpu-node-7' });
    writeFileSync(path.join(root, 'devices/system/edac/mc/mc1/dimm0/dimm_ce_count'), '160\n');
    const second = await src.collect(T0 + 60_000);
    expect(second.readings[0]?.metrics['edac.dimm.cpu_srcid_0_mc_1_chan_0_dimm_0.ce_count']).toBe(160);
    expect(logs.lines.filter((l) => l.msg === 'EDAC memory controllers')).toHaveLength(1);
  });

  it('reports each unreadable file once, however many samples', async () => {
    const logs = captureLogger();
    const src = new EdacSource({ sysRoot: fx('edac-broken') }, () => {}, logs.log);
    for (let i = 0; i < 3; i++) await src.collect(T0 + i);
    expect(logs.lines.filter((l) => l.msg === 'part of the EDAC tree unreadable')).toHaveLength(5);
    expect(src.stats.errors).toBe(5);
  });

  it('unavailable is logged once under the scheduler (this VM has no EDAC either)', async () => {
    const logs = captureLogger();
    const sunk: Reading[] = [];
    const src = new EdacSource({ sysRoot: fx('pci-vm-no-aer'), intervalMs: 5 }, (r) => sunk.push(r), logs.log);
    await src.start();
    await new Promise((r) => setTimeout(r, 200));
    await src.stop();
    expect(sunk).toEqual([]);
    expect(src.stats.errors).toBeGreaterThanOrEqual(2);
    expect(logs.lines.filter((l) => l.code === 'FW_ERR_SOURCE_UNAVAILABLE')).toHaveLength(1);
  });

  it('the default configuration', () => {
    expect(DEFAULT_EDAC_SOURCE_CONFIG).toEqual({ enabled: true, intervalMs: 60_000, timeoutMs: 5_000, asset: '', sysRoot: '/sys' });
  });
});

/** The fixture tree as an in-memory SysfsReader, so thousands of mutated trees read in milliseconds. */
function memTree(dir: string): { fs: SysfsReader; files: Map<string, string>; names: string[] } {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(p, readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  const fs: SysfsReader = {
    readFile: async (f) => {
      const v = files.get(f);
      if (v === undefined) throw Object.assign(new Error(`ENOENT: ${f}`), { code: 'ENOENT' });
      return v;
    },
    readdir: async (d) => {
      const prefix = d.endsWith('/') ? d : `${d}/`;
      const out = new Set<string>();
      for (const f of files.keys()) if (f.startsWith(prefix)) out.add(f.slice(prefix.length).split('/')[0]!);
      if (!out.size) throw Object.assign(new Error(`ENOENT: ${d}`), { code: 'ENOENT' });
      return [...out];
    },
  };
  return { fs, files, names: [...files.keys()] };
}

describe('fuzz', () => {
  it('2,500 mutated EDAC trees: never throws, every value finite and non-negative', async () => {
    const rand = rng(7);
    const junk = ['', '-5', '1e9', 'NaN', '0x1f', '\u0000', '18446744073709551615', ' 7 ', '3\n4\n', 'Infinity', '12abc', '9007199254740993'];
    for (const tree of ['edac-skx', 'edac-amd', 'edac-csrow-legacy']) {
      const { fs, files, names } = memTree(fx(tree));
      const originals = new Map(files);
      const reader = new EdacReader(fx(tree), fs);
      const cases = tree === 'edac-skx' ? 1500 : 500;
      for (let i = 0; i < cases; i++) {
        const victims = 1 + Math.floor(rand() * 5);
        for (let j = 0; j < victims; j++) {
          const f = names[Math.floor(rand() * names.length)]!;
          const r = rand();
          if (r < 0.1) files.delete(f);
          else if (r < 0.7) files.set(f, junk[Math.floor(rand() * junk.length)]!);
          else files.set(f, String.fromCharCode(...Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256))));
        }
        let s;
        try {
          s = await reader.read();
        } catch (err) {
          throw new Error(`${tree} case ${i} threw: ${String(err)}`);
        }
        for (const [k, v] of Object.entries(s.metrics)) {
          if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${tree} case ${i}: ${k} = ${v}`);
          expect(k).toMatch(/^edac\.[a-z0-9_.-]+$/);
        }
        for (const [f, v] of originals) files.set(f, v);
      }
    }
  });
});
