import { generateKeyPairSync, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson, checkCommandSignature, commandMessage, signCommand } from '../../../agent/src/commands/command-signature.js';
import { buildCommandRequest } from '../../../agent/src/commands/command-client.js';
import { CommandHandler, type CommandEvent, type CommandHost, type CommandReply } from '../../../agent/src/commands/command-handler.js';
import { keyIdOf } from '../../../agent/src/core/keys.js';
import { captureLogger } from '../../helpers/capture-logger.js';
import { tempDir } from '../../helpers/model-fixtures.js';

describe('command signatures', () => {
  it('signs the documented canonical bytes (what a centre in another language reproduces)', () => {
    const f = {
      agentId: 'press-7',
      command: 'set-log-level',
      id: '6f1c2a',
      issuedAt: 1795436770123,
      expiresAt: 1795436830123,
      args: { level: 'debug', b: [1, { z: 1, a: 'é' }] },
    };
    // Python: json.dumps(x, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    expect(commandMessage(f).toString('utf8')).toBe(
      '["forewarn-command/1","press-7","set-log-level","6f1c2a",1795436770123,1795436830123,{"b":[1,{"a":"é","z":1}],"level":"debug"}]',
    );
    expect(commandMessage({ ...f, id: null, expiresAt: null, args: null }).toString()).toBe(
      '["forewarn-command/1","press-7","set-log-level",null,1795436770123,null,null]',
    );
    expect(canonicalJson({ b: undefined, a: [undefined, Number.NaN] })).toBe('{"a":[null,null]}');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const sig = signCommand(f, privateKey);
    expect(sig.keyId).toBe(keyIdOf(publicKey));
    expect(verify(null, commandMessage(f), publicKey, Buffer.from(sig.value, 'base64'))).toBe(true);
    const trusted = new Map([[sig.keyId, publicKey]]);
    expect(checkCommandSignature(f, sig, trusted)).toEqual({ ok: true, keyId: sig.keyId });
    // Any covered field changed: refused.
    for (const change of [
      { agentId: 'press-8' },
      { command: 'install-model' },
      { id: '6f1c2b' },
      { issuedAt: f.issuedAt + 1 },
      { expiresAt: null },
      { args: { level: 'trace' } },
    ]) {
      expect(checkCommandSignature({ ...f, ...change }, sig, trusted).ok, JSON.stringify(change)).toBe(false);
    }
    expect(checkCommandSignature(f, sig, new Map()).ok).toBe(false);
    expect(checkCommandSignature(f, undefined, trusted).ok).toBe(false);
    expect(checkCommandSignature(f, { alg: 'rsa', keyId: sig.keyId, value: sig.value }, trusted).ok).toBe(false);
  });

  it('never throws on hostile input: oversized, wrong types, bad response topics', async () => {
    const replies: Array<{ topic: string; payload: CommandReply }> = [];
    const evts: CommandEvent[] = [];
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pub = path.join(tempDir('fw-cmdkey-'), 'k.pub.pem');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const host: CommandHost = {
      status: () => ({}),
      flush: () => ({}),
      setLogLevel: (level) => ({ level }),
      reloadConfig: () => {
        throw new Error('boom');
      },
      diagnostics: () => ({}),
      installModel: async () => ({}),
    };
    const h = new CommandHandler(
      { agentId: 'a1', maxAgeSeconds: 300, clockSkewSeconds: 30, maxPayloadBytes: 2048, trustedKeys: () => [pub] },
      host,
      captureLogger().log,
      { reply: (topic, payload) => replies.push({ topic, payload }), event: (e) => evts.push(e) },
    );
    const now = 1_800_000_000_000;
    const at = (c: string) => `forewarn/v1/a1/cmd/${c}`;
    const code = async (c: string, body: unknown, responseTopic = 'forewarn/v1/a1/reply/x') =>
      (await h.handle({ topic: at(c), payload: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), responseTopic }, now)).error?.code;
    expect(await code('ping', 'x'.repeat(4096))).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('ping', [1])).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('ping', { issuedAt: 'now' })).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('ping', { issuedAt: now, args: 'x' })).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('ping', { issuedAt: now, extra: 1 })).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('ping', { issuedAt: now + 60_000 })).toBe('FW_ERR_COMMAND_EXPIRED');
    expect(await code('ping', { issuedAt: now + 20_000 })).toBeUndefined();
    expect(await code('ping', { issuedAt: now }, 'forewarn/v1/a1/cmd/ping')).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('ping', { issuedAt: now }, 'forewarn/v1/+/reply')).toBe('FW_ERR_COMMAND_MALFORMED');
    // Signed commands need an id; bad args are malformed; a failure while running is FW_ERR_COMMAND_FAILED.
    expect(await code('set-log-level', { issuedAt: now, args: { level: 'debug' } })).toBe('FW_ERR_COMMAND_MALFORMED');
    const sign = (c: string, args?: Record<string, unknown>) => buildCommandRequest('a1', c, { issuedAt: now, privateKey, ...(args ? { args } : {}) });
    expect(await code('set-log-level', sign('set-log-level', { level: 'loud' }))).toBe('FW_ERR_COMMAND_MALFORMED');
    expect(await code('set-log-level', sign('set-log-level', { level: 'warn' }))).toBeUndefined();
    expect(await code('reload-config', sign('reload-config'))).toBe('FW_ERR_COMMAND_FAILED');
    expect(await code('install-model', sign('install-model', { bundle: '%%%' }))).toBe('FW_ERR_COMMAND_MALFORMED');
    // A request signed for another agent does not verify here.
    const forB = buildCommandRequest('b2', 'set-log-level', { issuedAt: now, privateKey, args: { level: 'warn' } });
    expect(await code('set-log-level', forB)).toBe('FW_ERR_COMMAND_UNAUTHORIZED');
    // Replies only to acceptable topics; events for everything.
    expect(replies.every((r) => r.topic === 'forewarn/v1/a1/reply/x')).toBe(true);
    expect(replies).toHaveLength(evts.length - 2);
    expect(evts.filter((e) => !e.replied)).toHaveLength(2);
    expect(evts.find((e) => e.code === 'FW_ERR_COMMAND_FAILED')).toMatchObject({ outcome: 'failed', command: 'reload-config' });
  });
});
