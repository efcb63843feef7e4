import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';

/** Validates payloads against the schemas of docs/asyncapi.yaml, so the document and the agent cannot drift apart. */

const ROOT = path.resolve(import.meta.dirname, '../..');

interface AsyncApiDoc {
  asyncapi: string;
  channels: Record<string, { address: string; messages: Record<string, { $ref: string }> }>;
  operations: Record<string, { channel: { $ref: string }; bindings?: { mqtt?: { qos: number; retain: boolean } } }>;
  components: { messages: Record<string, { payload: { $ref: string } }>; schemas: Record<string, unknown> };
}

export const asyncApi = parse(readFileSync(path.join(ROOT, 'docs/asyncapi.yaml'), 'utf8')) as AsyncApiDoc;

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(
  JSON.parse(JSON.stringify({ $id: 'contract', definitions: asyncApi.components.schemas }).replaceAll('#/components/schemas/', 'contract#/definitions/')),
);

/** The channel whose address pattern matches `topic`, with the message schema names it accepts. */
export function channelFor(topic: string): { name: string; messages: string[]; qos?: number; retain?: boolean } | undefined {
  for (const [name, ch] of Object.entries(asyncApi.channels)) {
    const re = new RegExp(`^${ch.address.replace(/\{[^}]+\}/g, '[^/]+')}$`);
    if (!re.test(topic)) continue;
    const op = Object.values(asyncApi.operations).find((o) => o.channel.$ref === `#/channels/${name}`);
    return {
      name,
      messages: Object.values(ch.messages).map((m) => m.$ref.split('/').pop()!),
      qos: op?.bindings?.mqtt?.qos,
      retain: op?.bindings?.mqtt?.retain,
    };
  }
  return undefined;
}

/** Returns the validation errors of `payload` for the channel of `topic` (empty when valid). */
export function contractErrors(topic: string, payload: unknown): string[] {
  const ch = channelFor(topic);
  if (!ch) return [`no channel in docs/asyncapi.yaml matches ${topic}`];
  const errors: string[] = [];
  for (const m of ch.messages) {
    const schemaName = asyncApi.components.messages[m]!.payload.$ref.split('/').pop()!;
    const validate = ajv.getSchema(`contract#/definitions/${schemaName}`);
    if (!validate) return [`schema ${schemaName} not found`];
    if (validate(payload)) return [];
    errors.push(...(validate.errors ?? []).map((e) => `${schemaName}${e.instancePath}: ${e.message}`));
  }
  return errors;
}
