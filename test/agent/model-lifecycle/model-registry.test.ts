import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ModelRegistry, compareVersions } from '../../../agent/src/model-lifecycle/model-registry.js';
import { isForewarnError } from '../../../agent/src/core/errors.js';
import type { ModelLifecycleEvent } from '../../../agent/src/contract/topics.js';
import { MODELS, tempDir } from '../../helpers/model-fixtures.js';

function registry(keep = 3) {
  return new ModelRegistry(path.join(tempDir('fw-data-'), 'models'), MODELS, keep);
}

/** A staged version folder (the registry itself does not look inside; install-model checked it). */
function staged(r: ModelRegistry, version: string): string {
  const dir = r.stagingDir();
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ version }));
  return dir;
}

const info = { keyId: 'k', bundleSha256: '', shadowSamples: 200 };

function drained(r: ModelRegistry): ModelLifecycleEvent[] {
  const out: ModelLifecycleEvent[] = [];
  r.drainEvents((e) => out.push(...e));
  return out;
}

describe('ModelRegistry', () => {
  it('keeps the last keepVersions versions, the current one included; a candidate is kept besides and not counted', () => {
    const r = registry(3);
    for (const v of ['1.1.0', '1.2.0', '1.3.0', '1.4.0']) r.addVersion('machine-failure', v, staged(r, v), info, { promote: true });
    let s = r.read('machine-failure');
    expect(s.current).toBe('1.4.0');
    expect(s.versions.map((v) => v.version)).toEqual(['1.2.0', '1.3.0', '1.4.0']);
    expect(existsSync(r.versionDir('machine-failure', '1.1.0'))).toBe(false);
    expect(s.previous).toEqual([null, '1.2.0', '1.3.0']);
    r.addVersion('machine-failure', '1.5.0', staged(r, '1.5.0'), info);
    s = r.read('machine-failure');
    expect(s).toMatchObject({ current: '1.4.0', candidate: '1.5.0' });
    expect(s.versions.map((v) => v.version)).toEqual(['1.2.0', '1.3.0', '1.4.0', '1.5.0']);
    // Promoted, the candidate counts: the oldest goes.
    expect(r.promote('machine-failure', '1.5.0', 'test')).toBe(true);
    expect(r.read('machine-failure').versions.map((v) => v.version)).toEqual(['1.3.0', '1.4.0', '1.5.0']);
    expect(statSync(path.join(r.root, 'machine-failure')).mode & 0o777).toBe(0o700);
    // keepVersions 1: only the current one stays; rollback can then only reach the shipped model.
    const one = registry(1);
    for (const v of ['1.1.0', '1.2.0']) one.addVersion('machine-failure', v, staged(one, v), info, { promote: true });
    expect(one.read('machine-failure')).toMatchObject({ current: '1.2.0', previous: [null] });
    expect(one.rollback('machine-failure', 'operator', 'test')).toMatchObject({ from: '1.2.0', to: '1.0.0' });
  });

  it('rolls back step by step to the shipped model, deleting what it rolls back, then refuses', () => {
    const r = registry(3);
    for (const v of ['1.1.0', '1.2.0']) r.addVersion('machine-failure', v, staged(r, v), info, { promote: true });
    r.addVersion('machine-failure', '1.3.0', staged(r, '1.3.0'), info);
    drained(r);
    expect(r.currentDir('machine-failure')).toBe(r.versionDir('machine-failure', '1.2.0'));
    expect(r.modelDirs('machine-failure')).toEqual([
      r.versionDir('machine-failure', '1.2.0'),
      r.versionDir('machine-failure', '1.1.0'),
      path.join(MODELS, 'machine-failure'),
    ]);
    // The waiting candidate goes too: nothing unproven replaces the version restored.
    expect(r.rollback('machine-failure', 'operator', 'bad batch')).toEqual({ from: '1.2.0', to: '1.1.0', discarded: '1.3.0' });
    expect(existsSync(r.versionDir('machine-failure', '1.2.0'))).toBe(false);
    expect(existsSync(r.versionDir('machine-failure', '1.3.0'))).toBe(false);
    expect(r.rollback('machine-failure', 'operator', 'again')).toEqual({ from: '1.1.0', to: '1.0.0', discarded: null });
    expect(r.read('machine-failure')).toMatchObject({ current: null, candidate: null, previous: [], versions: [] });
    expect(r.currentDir('machine-failure')).toBe(path.join(MODELS, 'machine-failure'));
    try {
      r.rollback('machine-failure', 'operator', 'once more');
      expect.unreachable();
    } catch (err) {
      expect(isForewarnError(err, 'FW_ERR_MODEL_REGISTRY')).toBe(true);
      expect((err as Error).message).toContain('it runs the version shipped with the agent (1.0.0)');
    }
    expect(drained(r).map((e) => (e.type === 'model-rollback' ? `${e.version}→${e.restoredVersion} ${e.stage}: ${e.reason}` : e.type))).toEqual([
      '1.3.0→1.2.0 operator: discarded by the rollback of 1.2.0',
      '1.2.0→1.1.0 operator: bad batch',
      '1.1.0→1.0.0 operator: again',
    ]);
    expect(r.read('machine-failure').history.map((h) => h.action)).toEqual(['promoted', 'promoted', 'candidate', 'rollback', 'rollback', 'rollback']);
  });

  it('promotes or discards only the candidate it is asked about', () => {
    const r = registry();
    r.addVersion('machine-failure', '1.1.0', staged(r, '1.1.0'), info);
    expect(r.promote('machine-failure', '1.0.9', 'stale')).toBe(false);
    expect(r.discardCandidate('machine-failure', '1.0.9', 'shadow', 'stale')).toBe(false);
    expect(r.discardCandidate('machine-failure', '1.1.0', 'shadow', 'disagreed')).toBe(true);
    expect(r.read('machine-failure')).toMatchObject({ current: null, candidate: null, versions: [] });
    expect(r.promote('machine-failure', '1.1.0', 'too late')).toBe(false);
  });

  it('publishes its journal at least once: events stay until the publisher commits them', () => {
    const r = registry();
    r.addVersion('machine-failure', '1.1.0', staged(r, '1.1.0'), info);
    expect(() =>
      r.drainEvents(() => {
        throw new Error('disk full');
      }),
    ).toThrow('disk full');
    const first = drained(r);
    expect(first.map((e) => e.type)).toEqual(['model-candidate']);
    expect(drained(r)).toEqual([]);
    r.recordEvent({ ts: 1, type: 'model-rejected', bundle: 'x.fwm', code: 'FW_ERR_MODEL_UNTRUSTED', reason: 'unsigned' });
    expect(drained(r)).toEqual([{ ts: 1, type: 'model-rejected', bundle: 'x.fwm', code: 'FW_ERR_MODEL_UNTRUSTED', reason: 'unsigned' }]);
    // A torn last line (a crash mid-append) waits until it is whole; a large, fully published journal is cut back.
    writeFileSync(path.join(r.root, 'events.jsonl'), '{"ts":2,"type":"model-rej', { flag: 'a' });
    expect(drained(r)).toEqual([]);
    writeFileSync(
      path.join(r.root, 'events.jsonl'),
      `ected","bundle":"y","code":"FW_ERR_MODEL_BUNDLE","reason":"r"}\n${'{"ts":3,"type":"model-rejected","bundle":"z","code":"FW_ERR_MODEL_BUNDLE","reason":"x"}\n'.repeat(1000)}`,
      { flag: 'a' },
    );
    expect(drained(r)).toHaveLength(1001);
    expect(statSync(path.join(r.root, 'events.jsonl')).size).toBe(0);
    expect(readFileSync(path.join(r.root, 'events.offset'), 'utf8').trim()).toBe('0');
  });

  it('takes no lock to look at a journal it read to its end; what is added after, from any process, is drained', () => {
    const r = registry();
    r.addVersion('machine-failure', '1.1.0', staged(r, '1.1.0'), info);
    expect(drained(r).map((e) => e.type)).toEqual(['model-candidate']);
    // Another process holds the registry's lock: a look that took it would wait LOCK_TIMEOUT_MS and then fail.
    const holder = new Database(path.join(r.root, 'registry.lock'));
    holder.exec('BEGIN EXCLUSIVE');
    try {
      expect(drained(r)).toEqual([]);
    } finally {
      holder.exec('ROLLBACK');
      holder.close();
    }
    // Another registry on the same folder (the CLI) journals an event; this one sees the journal changed.
    new ModelRegistry(r.root, MODELS).recordEvent({ ts: 5, type: 'model-rejected', bundle: 'b.fwm', code: 'FW_ERR_MODEL_UNTRUSTED', reason: 'unsigned' });
    expect(drained(r).map((e) => e.ts)).toEqual([5]);
    expect(drained(r)).toEqual([]);
  });

  it('refuses names that are not model names, and reports an unreadable state file', () => {
    const r = registry();
    expect(() => r.read('../etc')).toThrow(/not a model name/);
    mkdirSync(path.join(r.root, 'machine-failure'), { recursive: true });
    writeFileSync(path.join(r.root, 'machine-failure', 'state.json'), '{ broken');
    expect(() => r.read('machine-failure')).toThrow(expect.objectContaining({ code: 'FW_ERR_MODEL_REGISTRY' }));
  });

  it('keeps its lock and state files private (0600) under a 022 umask, and tightens a lock file left 0644', () => {
    // The CLI (`forewarn model install`) runs with the user's umask, not the agent's 077.
    const before = process.umask(0o022);
    try {
      const r = registry();
      r.addVersion('machine-failure', '1.1.0', staged(r, '1.1.0'), info);
      const mode = (f: string) => statSync(path.join(r.root, f)).mode & 0o777;
      expect(mode('registry.lock').toString(8)).toBe('600');
      for (const f of ['events.jsonl', 'machine-failure/state.json']) expect(mode(f).toString(8), f).toBe('600');
      for (const d of ['.', 'machine-failure', 'machine-failure/1.1.0']) expect(mode(d).toString(8), d).toBe('700');
      const old = registry();
      mkdirSync(old.root, { recursive: true });
      writeFileSync(path.join(old.root, 'registry.lock'), '', { mode: 0o644 });
      old.recordEvent({ ts: 1, type: 'model-rejected', bundle: 'x.fwm', code: 'FW_ERR_MODEL_UNTRUSTED', reason: 'unsigned' });
      expect((statSync(path.join(old.root, 'registry.lock')).mode & 0o777).toString(8)).toBe('600');
    } finally {
      process.umask(before);
    }
  });

  it('orders versions by number, a pre-release before its release', () => {
    expect(compareVersions('1.10.0', '1.9.9')).toBe(1);
    expect(compareVersions('1.0.0', '1.0.0+build.7')).toBe(0);
    expect(compareVersions('1.1.0-rc.1', '1.1.0')).toBe(-1);
    expect(compareVersions('1.1.0-rc.2', '1.1.0-rc.1')).toBe(1);
    expect(compareVersions('2.0.0', '10.0.0')).toBe(-1);
  });
});
